"""supernet-pipeline's stages: contiguous runs of units, balanced by the GPU time of each
unit's training ops (mean over candidates)."""
from hypothesis import given
from hypothesis import strategies as st

from hwmodels.model import model_for
from simulator.policies.supernet_pipeline import balanced_stages, unit_costs
from workloads.supernet import SPACES, merged_graph, unit_of
from workloads.training import lower_training


@given(st.lists(st.floats(0.0, 1.0), min_size=1, max_size=30), st.integers(1, 30))
def test_stages_are_contiguous_and_each_holds_a_unit(costs, stages):
    stages = min(stages, len(costs))
    out = balanced_stages(costs, stages)
    assert len(out) == len(costs) and out[0] == 0
    assert all(b - a in (0, 1) for a, b in zip(out, out[1:], strict=False))
    assert out[-1] == stages - 1


def test_unit_costs_are_the_mean_seconds_of_each_units_training_ops():
    space, model, batch = SPACES["spos_cifar"], model_for("v100"), 32
    units, costs = unit_costs(space, batch, model)
    expected = dict.fromkeys(units, 0.0)
    for c in range(space.num_choices):
        train = lower_training(merged_graph(space, [(c,) * space.num_blocks], batch))
        for op in train:
            unit = unit_of(train, op)
            block = unit.split("c", 1)[0] if unit.startswith("b") else unit
            expected[block] += model.op_time_s(op) / space.num_choices
    assert costs == [expected[u] for u in units]
    assert units[0] == "stem" and units[-1] == "head" and all(c > 0 for c in costs)
