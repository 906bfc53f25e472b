"""EdgeSplit edge scheduler: loads exported policies (numpy + onnxruntime only)."""
