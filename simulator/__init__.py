"""dnnsim: simulator."""
