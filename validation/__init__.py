"""dnnsim: validation (published targets, calibration and validation against real runs);
README.md beside this file maps its packages.

`compare_module` is imported lazily: importing this package never imports torch.
"""


def compare_module(module, example_input, profile, **kwargs):
    """See validation.validate.compare.compare_module."""
    from .validate.compare import compare_module as _compare_module
    return _compare_module(module, example_input, profile, **kwargs)


__all__ = ["compare_module"]
