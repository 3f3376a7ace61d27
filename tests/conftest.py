"""Shared pytest set-up: run JAX on the CPU, quietly, whatever the machine has."""

import os

os.environ.setdefault("JAX_PLATFORMS", "cpu")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
