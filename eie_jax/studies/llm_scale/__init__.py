"""Llama-2-7B's FC shapes on EIE, per token (experiments.llm_scale)."""
