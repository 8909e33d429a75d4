"""Metrics: pure functions of encoder outputs, timings and predictions. They never load
models or read files."""
