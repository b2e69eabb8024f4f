"""SparseTrain (validation/targets/sparsetrain.toml): the conv-speedup metric, figures, the
sparsity profiles the sparse-train policy finds by name, and the sparsity measured in PyTorch."""
