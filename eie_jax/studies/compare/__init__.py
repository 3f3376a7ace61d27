"""Hardware-aware compression methods compared on EIE (experiments.compare)."""
