"""Path parallelism (validation/targets/path_parallel.toml): metrics that sweep, figures."""
