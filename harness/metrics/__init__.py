"""Metrics: pure functions of encoder outputs, timings and predictions. They never load
models; the few that read files (`compare.compare_runs`, `mme.read_predictions`) are thin
loaders in front of pure functions that take arrays or frames."""
