"""Studies that explain the model rather than run it, each `python -m validation.experiments.X`:
cold_start (a small op after a heavy one), residency (ops in steps that fit in the caches) and
grid_cv (leave one calibration grid network out)."""
