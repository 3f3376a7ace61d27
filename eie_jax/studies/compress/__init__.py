"""Deep Compression of a network, then its layers on EIE (experiments.compress)."""
