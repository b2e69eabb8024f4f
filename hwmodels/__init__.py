"""dnnsim: hwmodels."""
