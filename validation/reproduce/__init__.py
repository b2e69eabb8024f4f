"""Reproduce the papers' published figures: load the targets (validation/targets/*.toml),
simulate each, compare with the published value and write the report (`dnnsim reproduce`).
One sub-package per paper holds the metrics and figures its targets name."""
