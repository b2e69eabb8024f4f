"""Pipelined training with stale weights (validation/targets/pipeline_stale.toml): figures, and
real training runs with the schedule's delays (staleness.py) for time to accuracy."""
