"""Data (rank 1): the IDX reader and its datasets, character text."""
