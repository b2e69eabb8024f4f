"""workloads.kinds: one record per op kind, read by the IR, the training lowering, the cost
families and the PyTorch replay; a kind added by one declaration trains and simulates."""
import pytest

from hwmodels.families import FAMILIES, KIND_FAMILY, point_shape
from simulator.api import simulate
from simulator.cluster import Cluster
from workloads.builder import GraphBuilder
from workloads.graph import ALL_KINDS, FORWARD_KINDS, Op, TensorSpec, WorkloadError
from workloads.kinds import (
    KindError,
    OpKind,
    all_kinds,
    backward_rules,
    kind_of,
    per_element,
    register,
    unregister,
)
from workloads.training import lower_training, training_memory


@pytest.fixture
def square_kind():
    """x * x and its gradient 2 x dy, declared by the test alone (then removed)."""
    from workloads.kinds._torch import torch
    register(
        OpKind("square", "elementwise", flops=per_element(1.0), saves=("in",),
               torch_kernel=lambda op, state: torch.square),
        OpKind("square_grad", "elementwise", "backward", flops=per_element(2.0),
               torch_kernel=lambda op, state: lambda dy, x: 2 * x * dy),
    )
    yield "square"
    unregister("square")
    unregister("square_grad")


def square_net():
    b = GraphBuilder("squares", input_shape=(16,), batch=4)
    x = b.linear(b.input(), 32)
    x = b.op("square", [x])
    b.linear(x, 10, name="head")
    return b.build()


def test_a_kind_declared_once_builds_trains_and_simulates(square_kind):
    assert square_kind in ALL_KINDS and square_kind in FORWARD_KINDS
    assert KIND_FAMILY[square_kind] == "elementwise"
    g = square_net()
    sq = g.op("square")
    assert sq.flops == 4 * 32 and sq.bytes_moved == 2 * 4 * 32 * 4 and not sq.is_view
    train = lower_training(g)
    grad = train.op("square.grad")
    # the default backward: one <kind>_grad reading dy and the saved input
    assert grad.kind == "square_grad" and grad.inputs == ("head.grad_input", "linear")
    assert grad.saved == ("linear",) and grad.flops == 2 * 4 * 32
    assert train.op("linear.grad_weight").inputs[0] == "square.grad"
    assert point_shape(grad) == (4, 32)
    assert training_memory(train).activations_bytes > 0
    result = simulate(g, Cluster.build("skylake-x-6c", 1, "eth10g"), "sequential")
    assert result.ok and result.iteration_time_s > 0


def test_a_declared_kind_runs_in_pytorch(square_kind):
    torch = pytest.importorskip("torch")
    from validation.calibrate.torch_exec import GraphModule, example_input
    from validation.calibrate.torch_ops import op_callable
    g = square_net()
    assert GraphModule(g)(example_input(g)).shape == (4, 10)
    train = lower_training(g)
    out = op_callable(train.op("square.grad"), graph=train)()
    assert isinstance(out, torch.Tensor) and tuple(out.shape) == (4, 32)


def test_a_kind_is_declared_once_and_unknown_kinds_are_named():
    with pytest.raises(KindError, match="already declared"):
        register(OpKind("relu", "elementwise"))
    with pytest.raises(KindError, match="unknown op kind 'nope'"):
        kind_of("nope")
    with pytest.raises(WorkloadError, match="unknown kind 'nope'"):
        Op("x", "nope", (), (), TensorSpec((1,)))
    with pytest.raises(KindError, match="phase"):
        OpKind("bad", "elementwise", phase="sideways")
    b = GraphBuilder("g", input_shape=(4,), batch=2)
    with pytest.raises(WorkloadError, match="declare it first"):
        b.op("nope", [b.input()])
    with pytest.raises(WorkloadError, match="backward kind"):
        b.op("relu_grad", ["input"])


def test_every_kind_has_a_family_and_a_way_to_run():
    for k in all_kinds():
        assert k.family in FAMILIES, k.name
        runs = k.torch_kernel is not None or k.torch_module is not None
        assert runs or k.view is True, f"{k.name} has no PyTorch kernel"
        if k.phase == "backward" and k.name != "grad_accumulate":
            # a gradient kind names its forward kind: <forward>_grad...
            assert kind_of(k.name.split("_grad")[0]).phase == "forward", k.name


def test_gradient_kinds_exist_for_the_default_backward_rule():
    for k in all_kinds():
        if k.phase == "forward" and k.backward is None:
            assert kind_of(f"{k.name}_grad").phase == "backward", k.name
        if k.backward is backward_rules.input_and_weight:
            for part in ("grad_input", "grad_weight"):
                assert kind_of(f"{k.name}_{part}").phase == "backward"
