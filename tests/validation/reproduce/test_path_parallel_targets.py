"""The path-parallel target file: bounds with hooks that resolve (the sweep itself runs in
`dnnsim reproduce`, too long for the tests)."""
from validation.paths import TARGETS
from validation.reproduce.path_parallel import metrics as m
from validation.reproduce.targets import load_file, resolve_callable

FILE = TARGETS / "path_parallel.toml"


def test_targets_are_bounds_with_hooks():
    paper = load_file(FILE)
    assert {t.id for t in paper.targets} == {"speedup-over-conventional",
                                             "speedup-over-frameworks"}
    for t in paper.targets:
        assert t.status == "bound" and t.lower is not None and t.upper is not None
        assert callable(resolve_callable(t.metric))
        assert t.defaults
    assert callable(resolve_callable(paper.figures))


def test_a_sweep_point_compares_per_subnet():
    row = m.point("spos_cifar", 2, 2)
    assert row["speedup_dp"] == row["path_parallel"] / row["dp"] > 1.0
    assert "speedup_pipeline" in row


def test_bounds_take_the_points_inside_one_node(monkeypatch):
    rows = [{"gpus": 8, "speedup_dp": 2.0, "speedup_pipeline": 3.0},
            {"gpus": 4, "speedup_dp": 1.5},
            {"gpus": 16, "speedup_dp": 12.0, "speedup_pipeline": 9.0}]
    monkeypatch.setattr(m, "sweep", lambda quick=False: rows)
    assert [r["gpus"] for r in m.one_node_rows()] == [8, 4]
    assert m.max_speedup_over_dp() == 2.0
    assert m.max_speedup_over_pipeline() == 3.0
