"""Guichet's benchmark: ``python -m bench`` (``make bench``); see README, "Benchmark"."""
