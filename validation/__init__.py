"""dnnsim: validation."""
