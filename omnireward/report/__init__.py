"""Evaluation reports: summary.json, PNG plots and HTML pages with the pairs a model gets wrong.

stats (bootstrap, tie curve, calibration) → summary (every number shown) → plots / html
(drawn from the summary only) → build (writes the folder). published/ holds published results
per benchmark with their sources; headline computes each benchmark's own figure.
"""
