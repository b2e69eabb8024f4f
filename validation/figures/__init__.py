"""Figure makers for the reproduce report: one module per paper, `make_figures(out_dir)`."""
