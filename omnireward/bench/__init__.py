"""Benchmarks run end to end from their published layout (prepare, score, render the paper's table)."""
