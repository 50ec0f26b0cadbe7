"""Benchmarks and the load-test harness (run the scripts in this folder; see run.py)."""
