"""Commands of the validation package, found by `dnnsim` through the entry-point group
`dnnsim.commands` (pyproject.toml), so that `simulator` never imports `validation`."""
