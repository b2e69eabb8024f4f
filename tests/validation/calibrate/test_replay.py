"""validation.calibrate.replay: a training graph replayed op by op with real data flow."""
import pytest

torch = pytest.importorskip("torch")

from validation.calibrate.calibration_nets import GRID_CASES, NETWORKS, get  # noqa: E402
from validation.calibrate.replay import replay_times  # noqa: E402
from workloads import zoo  # noqa: E402
from workloads.graph import WorkloadError  # noqa: E402
from workloads.training import lower_training  # noqa: E402


@pytest.mark.parametrize("name", ["resnet20", "lenet5", "alexnet_cifar"])
def test_replay_times_every_kernel_op_of_each_round(name):
    train = lower_training(zoo.get(name, batch=2))
    rounds = replay_times(train, "cpu", rounds=2, warmup=0)
    kernels = {op.name for op in train.topo() if not op.is_view}
    assert len(rounds) == 2
    for r in rounds:
        assert set(r) == kernels and all(t > 0 for t in r.values())


def test_replay_updates_the_parameters_it_steps():
    from validation.calibrate.replay import _as_shape, _view
    from validation.calibrate.torch_ops import KernelState, op_kernel
    train = lower_training(zoo.get("lenet5", batch=2))
    state = KernelState("cpu", graph=train)
    kernels = {op.name: op_kernel(op, state) for op in train.topo()}
    fc1 = train.op("fc1.update")
    before = [p.clone() for p in state.params_of(train.op("fc1"))]
    env = {}
    for op in train.topo():
        ins = [_as_shape(env[t], s.shape, state)
               for t, s in zip(op.inputs, op.in_specs, strict=True)]
        if kernels[op.name] is None:
            env[op.name] = _view(op, ins, state)
        else:
            env[op.name] = kernels[op.name](*ins)
    after = state.params_of(fc1)
    assert state.grads["fc1"][0].shape == before[0].shape   # the gradient the update read
    assert not torch.equal(before[0], after[0])


def test_replay_starts_from_the_parameters_a_step_starts_from():
    """The values decide how often a max-pool branches, so its time: the replay's parameters
    are initialised as GraphModule's (He-normal weights, zero biases, unit batch-norm scale)."""
    from validation.calibrate.torch_exec import GraphModule
    from validation.calibrate.torch_ops import KernelState
    graph = zoo.get("lenet5", batch=2)
    module = GraphModule(graph, seed=0)
    state = KernelState("cpu", seed=0, graph=lower_training(graph))
    conv1 = state.params_of(graph.op("conv1"))
    assert torch.equal(conv1[0], module.weights["p1_0"]) and not conv1[1].any()
    fc1 = state.params_of(graph.op("fc1"))[0]     # He-normal: std sqrt(2 / fan_in)
    assert fc1.std().item() == pytest.approx((2.0 / fc1.shape[1]) ** 0.5, rel=0.1)


def test_synthetic_calibration_networks_build_and_replay():
    for name in NETWORKS:
        g = get(name, 2)
        assert g.meta["network"] == name and len(g.topo()) > 5
    assert {n for n, _ in GRID_CASES} == set(NETWORKS)
    # grouped convolutions (not depthwise) of 2 to 32 channels per group: oneDNN runs them in
    # a kernel of their own (hwmodels/kernels.py)
    grouped = {op.in_specs[0].shape[1] // op.attrs["groups"] for name, batch in GRID_CASES
               for op in get(name, batch) if op.kind == "conv2d" and op.attrs["groups"] > 1}
    assert {2, 4, 8, 16, 32} <= grouped
    rounds = replay_times(lower_training(get("grid_separable", 1)), "cpu", rounds=1, warmup=0)
    assert rounds[0]
    with pytest.raises(WorkloadError, match="batch size"):
        get("grid_k3", 0)


def test_replay_runs_training_dropout_with_its_mask():
    from validation.calibrate.torch_ops import KernelState, op_kernel
    train = lower_training(get("grid_mlp", 4))
    rounds = replay_times(train, "cpu", rounds=1, warmup=0)
    kinds = {train.op(name).kind for name in rounds[0]}
    assert {"dropout", "dropout_grad"} <= kinds
    drop = next(op for op in train.topo() if op.kind == "dropout")
    grad = train.op(f"{drop.name}.grad")
    state = KernelState("cpu", graph=train)
    x = torch.ones(drop.out.shape)
    y = op_kernel(drop, state)(x)
    dx = op_kernel(grad, state)(torch.ones(drop.out.shape))
    p = drop.attrs["p"]
    assert torch.equal(y == 0, dx == 0) and 0.3 < float((y == 0).float().mean()) / p < 1.7
    assert torch.allclose(y[y != 0], torch.full_like(y[y != 0], 1 / (1 - p)))


def test_replay_keeps_permuted_views_views_and_copies_them_where_pytorch_does():
    """The heads of attention are strided views of the projection's output (no copy); the
    `contiguous` copy reads that view and makes the same values as PyTorch's .contiguous();
    run alone it makes the same copy of a fresh tensor."""
    from validation.calibrate.replay import _as_shape, _view
    from validation.calibrate.torch_ops import KernelState, op_callable, op_kernel
    from workloads.zoo import transformers as zt
    train = lower_training(zt.gpt2(2, width=32, depth=1, heads=4, seq_len=8, vocab_size=20,
                                   max_positions=8, attention="naive", dropout=0.0))
    state = KernelState("cpu", graph=train)
    env, copies = {}, 0
    for op in train.topo():
        ins = [_as_shape(env[t], s.shape, state)
               for t, s in zip(op.inputs, op.in_specs, strict=True)]
        kernel = op_kernel(op, state)
        env[op.name] = _view(op, ins, state) if kernel is None else kernel(*ins)
        if op.kind == "permute":
            view, source = env[op.name], ins[0]
            assert view.data_ptr() == source.data_ptr()            # the same storage
            assert view.stride() == tuple(source.stride(d) for d in op.attrs["dims"])
        if op.kind == "contiguous":
            assert not ins[0].is_contiguous() and env[op.name].is_contiguous()
            assert torch.equal(env[op.name], ins[0].contiguous())
            copies += 1
    assert copies == 1                  # the heads merged back, once per block
    copy = next(op for op in train if op.kind == "contiguous")
    assert op_callable(copy)().is_contiguous()
    rounds = replay_times(train, "cpu", rounds=1, warmup=0)
    assert rounds[0][copy.name] > 0


def test_replay_flushes_subnormal_floats_while_it_runs(monkeypatch):
    """Its values are synthetic: a subnormal result inside the replay is flushed to zero, and
    the thread computes subnormals again after it."""
    import validation.calibrate.replay as replay
    if not torch.set_flush_denormal(False):
        pytest.skip("this CPU cannot flush subnormals")
    tiny = torch.finfo(torch.float32).tiny
    seen = []
    original = replay.op_kernel

    def op_kernel(op, state):
        kernel = original(op, state)
        if kernel is None:
            return None

        def run(*ins):
            seen.append(float(torch.tensor([tiny]) / 4))
            return kernel(*ins)
        return run
    monkeypatch.setattr(replay, "op_kernel", op_kernel)
    replay.replay_times(lower_training(zoo.get("lenet5", batch=2)), "cpu", rounds=1, warmup=0)
    assert seen and set(seen) == {0.0}
    assert float(torch.tensor([tiny]) / 4) > 0
