"""EdgeSplit benchmarks: ``python -m benchmarks.run`` (results go to BENCHMARKS.md)."""
