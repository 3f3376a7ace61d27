"""The W4A16 study of character language models (experiments.lm_compress)."""
