"""The optimizer's step as each framework runs it (hwmodels/gpu_frameworks.py OPTIMIZER_STEP):
PyTorch's multi-tensor calls move their lists once each and launch a kernel per chunk of
tensors for the whole step, which each layer's update shares by its tensors; TensorFlow's and
MXNet's fused per-tensor kernels move the step's minimum, one op per tensor; a fused
multi-tensor step (Megatron's) moves the minimum in one call."""
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hwmodels import catalog
from hwmodels.gpu import GPUModel
from workloads.builder import GraphBuilder
from workloads.training import lower_training


def model(framework: str) -> GPUModel:
    m = GPUModel(catalog.device("a100"))
    m.framework = framework
    return m


def mlp(layers: int, width: int = 256):
    b = GraphBuilder("mlp", (width,), batch=4)
    x = b.input()
    for i in range(layers):
        x = b.relu(b.linear(x, width, name=f"fc{i}"), name=f"relu{i}")
    return b.build()


def updates(train):
    return [op for op in train if op.phase == "update"]


@pytest.mark.parametrize("optimizer, passes", [("sgd", 3), ("sgd-momentum", 8),
                                               ("adam", 18), ("adamw", 20)])
def test_pytorch_moves_each_call_s_lists_and_a_fused_step_the_minimum(optimizer, passes):
    train = lower_training(mlp(3), optimizer)
    op = updates(train)[0]
    assert model("pytorch").chosen_option(op).traffic_bytes == passes * op.param_bytes
    assert model("tensorflow").chosen_option(op).traffic_bytes == op.bytes_moved
    fused = updates(lower_training(mlp(3), optimizer, fused_optimizer=True))[0]
    assert model("pytorch").chosen_option(fused).traffic_bytes == op.bytes_moved
    # only plain SGD's one call is already the minimum
    assert (op.bytes_moved < passes * op.param_bytes) == (optimizer != "sgd")


def test_a_per_tensor_framework_issues_one_op_per_tensor():
    op = updates(lower_training(mlp(3), "sgd-momentum"))[0]
    option = model("mxnet").chosen_option(op)
    assert (option.kernels, option.framework_ops) == (2, 2)      # weight and bias


@settings(max_examples=20, deadline=None)
@given(st.integers(1, 300), st.sampled_from(["sgd", "sgd-momentum", "adam", "adamw"]))
def test_the_layers_share_out_the_whole_step_s_calls_and_launches(layers, optimizer):
    train = lower_training(mlp(layers, 8), optimizer)
    ups, m = updates(train), model("pytorch")
    options = [m.chosen_option(op) for op in ups]
    calls = sum(o.framework_ops for o in options)
    launches = sum(o.kernels for o in options)
    from workloads.kinds.loss_update import OPTIMIZER_STEPS
    n_calls = len(OPTIMIZER_STEPS[optimizer].passes)
    assert calls == pytest.approx(n_calls)            # each call once for the whole step
    tensors = 2 * layers
    # at least one launch per call, one per chunk of at most 110 tensors
    assert n_calls <= launches + 1e-9
    assert launches == pytest.approx(sum(-(-tensors // cap) for cap in (
        {1: 110, 2: 64, 3: 48}[d] for _, _, d in OPTIMIZER_STEPS[optimizer].passes)))


@pytest.mark.parametrize("optimizer", ["sgd", "sgd-momentum", "adam", "adamw"])
def test_torch_optim_s_loop_steps_tensor_by_tensor_with_the_same_traffic(optimizer):
    from workloads.kinds.loss_update import OPTIMIZER_STEPS
    op = updates(lower_training(mlp(3), optimizer))[0]
    looped = updates(lower_training(mlp(3), optimizer, optimizer_loop=True))[0]
    loop, foreach = model("pytorch").chosen_option(looped), model("pytorch").chosen_option(op)
    calls = len(OPTIMIZER_STEPS[optimizer].passes)
    assert (loop.kernels, loop.framework_ops) == (2 * calls, 2 * calls)   # weight and bias
    assert loop.traffic_bytes == foreach.traffic_bytes
    assert foreach.framework_ops < loop.framework_ops
    # TensorFlow's fused kernels have no such loop
    assert model("tensorflow").chosen_option(looped) == model("tensorflow").chosen_option(op)


def test_the_loop_is_the_graph_s_setting_unless_the_lowering_names_one():
    g = mlp(2)
    g.meta["optimizer_loop"] = True
    assert all(op.attrs.get("optimizer_loop") for op in updates(lower_training(g)))
    assert not any(op.attrs.get("optimizer_loop")
                   for op in updates(lower_training(g, optimizer_loop=False)))
    assert not any(op.attrs.get("optimizer_loop") for op in updates(lower_training(mlp(2))))
