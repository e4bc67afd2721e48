"""Benchmark harnesses, each runnable as `python -m bench.<name>`; `python -m bench` runs all."""
