"""DeCNN (validation/targets/decnn.toml): the report's figures."""
