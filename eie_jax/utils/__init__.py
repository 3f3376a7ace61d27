"""Utilities (rank 0): user errors and the CLI runner, workdirs, config schemas, plotting, XLA
flags, timers.
"""
