"""Swapping and memory tuning (validation/targets/swap.toml): metrics that search, figures."""
