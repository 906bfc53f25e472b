"""EdgeSplit agents: baselines, learned policies and their export."""
