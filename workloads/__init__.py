"""dnnsim: workloads."""
