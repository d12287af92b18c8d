"""Benchmarks: each runs inferq and its baseline side by side and ends with one JSON line."""
