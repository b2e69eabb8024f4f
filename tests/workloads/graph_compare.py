"""Comparing an imported graph with one built by hand (for the from_torch tests)."""


def costs(g):
    """(kind, output shape, params, FLOPs) of every op that is not a view."""
    return [(op.kind, op.out.shape, op.params, op.flops) for op in g if not op.is_view]


def assert_same(imported, built, names=False):
    assert costs(imported) == costs(built)
    assert imported.params() == built.params()
    assert imported.flops() == built.flops()
    assert imported.activation_bytes() == built.activation_bytes()
    if names:
        assert [op.name for op in imported] == [op.name for op in built]
