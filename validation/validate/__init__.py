"""`dnnsim validate`: simulated training steps against measured ones, with the error
statistics (compare.py)."""
