"""Fingerprint-specific steps: ridge analysis (ridges), preprocessing recorded in a model's data config
(preprocess), the per-image ridge feature table (features) and per-person fusion of scores (fusion)."""
