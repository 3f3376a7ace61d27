"""Batch-1 text generation of a compressed character LM on EIE (experiments.generate)."""
