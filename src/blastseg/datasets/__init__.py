"""Datasets: every supported folder layout scanned into samples, mask encodings, seeded splits."""
