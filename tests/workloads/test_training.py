"""Training lowering: backward ops, updates, saved tensors and static memory."""
import pytest

from workloads import zoo
from workloads.builder import GraphBuilder
from workloads.graph import WorkloadError
from workloads.kinds.backward_rules import slice_contiguous
from workloads.training import lower_training, training_memory


def small_net(batch=2):
    """input 3x8x8 -> conv 4 (3x3, pad 1, no bias) -> relu -> flatten -> linear 10."""
    b = GraphBuilder("small", (3, 8, 8), batch=batch)
    x = b.relu(b.conv2d(b.input(), 4, 3, padding=1, name="conv"), name="relu")
    b.linear(b.flatten(x, name="flatten"), 10, name="fc")
    return b.build()


@pytest.fixture(scope="module")
def resnet20_train():
    return lower_training(zoo.get("resnet20", batch=2))


def test_every_conv_has_a_weight_gradient(resnet20_train):
    g = resnet20_train
    convs = [op.name for op in g.phase("forward") if op.kind == "conv2d"]
    assert len(convs) == 19
    for name in convs:
        assert g.op(f"{name}.grad_weight").kind == "conv2d_grad_weight"


def test_first_conv_makes_no_input_gradient(resnet20_train):
    assert "conv1.grad_input" not in resnet20_train
    assert "layer1.0.conv1.grad_input" in resnet20_train


def test_residual_accumulates_gradients(resnet20_train):
    acc = [op for op in resnet20_train if op.kind == "grad_accumulate"]
    # each block input feeds the block's conv1 and its shortcut
    assert len(acc) == 9
    assert all(len(op.inputs) == 2 for op in acc)


def test_one_update_per_parameterised_op(resnet20_train):
    g = resnet20_train
    with_params = {op.name for op in g.phase("forward") if op.params}
    updates = {op.forward for op in g.phase("update")}
    assert updates == with_params
    assert sum(op.params for op in g.phase("update")) == g.params()


def test_saved_tensors_and_loss():
    g = lower_training(small_net())
    assert g.op("loss").kind == "softmax_xent"
    assert g.op("conv.grad_weight").saved == ("input",)
    assert g.op("relu.grad").saved == ("relu",)
    assert g.op("fc.grad_weight").saved == ("flatten",)
    assert g.op("loss.grad").saved == ("fc",)
    # a saved tensor is a dependency of the op that needs it
    assert "relu" in g.predecessors("relu.grad")
    g.validate()


def test_training_memory_by_hand():
    g = lower_training(small_net(batch=2))
    mem = training_memory(g)
    params = 4 * 3 * 3 * 3 + 256 * 10 + 10          # 2,678
    assert mem.weights_bytes == mem.gradients_bytes == params * 4
    assert mem.optimizer_bytes == params * 4          # one momentum buffer
    # input (2x3x8x8), relu output (2x4x8x8, also what fc sees through flatten), logits (2x10)
    assert mem.activations_bytes == (2 * 3 * 64 + 2 * 4 * 64 + 2 * 10) * 4
    assert mem.total_bytes == 3 * params * 4 + mem.activations_bytes
    assert training_memory(g, "adam").optimizer_bytes == 2 * params * 4


def test_lowering_errors():
    g = lower_training(small_net())
    with pytest.raises(WorkloadError, match="already lowered"):
        lower_training(g)
    with pytest.raises(WorkloadError, match="optimizer"):
        lower_training(small_net(), optimizer="lbfgs")
    with pytest.raises(WorkloadError, match="not a training graph"):
        training_memory(small_net())


def _mlp_with_dropout(p):
    b = GraphBuilder("drop", input_shape=(64,), batch=8)
    b.linear(b.dropout(b.relu(b.linear(b.input(), 32, name="fc1")), p, name="drop"), 10,
             name="fc2")
    return b.build()


def test_dropout_costs_in_training_only():
    fwd = _mlp_with_dropout(0.5)
    assert fwd.op("drop").is_view and fwd.op("drop").flops == 0     # inference: identity
    train = lower_training(fwd)
    drop = train.op("drop")
    assert not drop.is_view and drop.flops > 0
    assert drop.bytes_written == 2 * drop.out.nbytes                  # output and mask
    assert fwd.op("drop").is_view                                     # forward graph untouched
    grad = train.op("drop.grad")
    assert grad.kind == "dropout_grad" and grad.bytes_read == 2 * grad.out.nbytes
    # fc2 now saves the dropout's own output, and the mask is kept for the backward pass
    no_drop = training_memory(lower_training(_mlp_with_dropout(0.0)))
    assert training_memory(train).activations_bytes == (no_drop.activations_bytes
                                                        + 2 * drop.out.nbytes)


def test_dropout_of_zero_is_free_in_training():
    train = lower_training(_mlp_with_dropout(0.0))
    assert train.op("drop").is_view
    assert not any(op.kind == "dropout_grad" for op in train.topo())


def test_activation_gradients_read_what_pytorch_saves():
    b = GraphBuilder("acts", input_shape=(8,), batch=4)
    h = b.linear(b.input(), 16)
    t = b.activation(h, "tanh")
    s = b.activation(t, "silu")
    b.linear(s, 3)
    train = lower_training(b.build())
    assert train.op("tanh.grad").saved == ("tanh",)        # its output
    assert train.op("silu.grad").saved == ("tanh",)        # its input
    assert train.op("silu.grad").kind == "silu_grad"
    assert train.op("silu.grad").out.shape == (4, 16)


def se_net(batch=2):
    """A squeeze-and-excitation gate: x * sigmoid(fc(pool(x))) reshaped to (N, C, 1, 1)."""
    b = GraphBuilder("se", (3, 8, 8), batch=batch)
    x = b.conv2d(b.input(), 4, 3, padding=1, name="conv")
    gate = b.activation(b.linear(b.flatten(b.adaptive_avgpool(x)), 4, name="fc"), "sigmoid")
    y = b.mul(x, b.reshape(gate, (batch, 4, 1, 1), name="view"), name="gate")
    b.linear(b.flatten(y), 10, name="head")
    return b.build()


def test_a_product_makes_one_gradient_per_factor_reading_the_other():
    g = lower_training(se_net())
    full, gate = g.op("gate.grad0"), g.op("gate.grad1")
    assert full.kind == gate.kind == "mul_grad"
    assert full.saved == ("view",) and gate.saved == ("conv",)
    assert full.out.shape == (2, 4, 8, 8) and gate.out.shape == (2, 4, 1, 1)
    # the gate's gradient sums dy * x over the pixels it broadcast to
    assert gate.flops == 2 * full.flops == 2 * 2 * 4 * 8 * 8
    # the gradient reaching the gate's reshape flows through the view to the sigmoid
    assert g.op("sigmoid.grad").inputs[0] == "gate.grad1"
    # conv's output feeds the pool and the product: its two gradients are summed
    assert set(g.op("conv.grad_acc").inputs) == {"gate.grad0", "adaptive_avgpool.grad"}


def test_both_factors_of_a_product_are_saved_activations():
    g = lower_training(se_net())
    saved = {t for op in g.phase("backward") for t in op.saved}
    assert {"conv", "view"} <= saved
    mem = training_memory(g).activations_bytes
    # the view's storage is the sigmoid's: counted once, with conv's output and the input
    assert mem >= 4 * (2 * 4 * 8 * 8 + 2 * 4 + 2 * 3 * 8 * 8)


def test_norm_gradients_carry_their_parameters_and_step_two_tensors():
    b = GraphBuilder("norms", (3, 8, 8), batch=2)
    x = b.groupnorm(b.conv2d(b.input(), 4, 3, padding=1, name="conv"), 2, name="gn")
    b.linear(b.layernorm(b.flatten(x), (256,), name="ln"), 10, name="fc")
    g = lower_training(b.build())
    assert g.op("gn.grad").params == 8 and g.op("ln.grad").params == 512
    assert g.op("gn.grad").saved == ("conv",)
    assert g.op("gn.update").attrs["tensors"] == g.op("ln.update").attrs["tensors"] == 2


def test_adding_a_constant_routes_the_gradient_and_scaling_makes_one_op():
    b = GraphBuilder("consts", (3, 8, 8), batch=2)
    x = b.conv2d(b.input(), 4, 3, padding=1, name="conv")
    x = b.scalar(b.scalar(b.scalar(x, shift=3.0, name="plus"), scale=0.5, name="half"),
                 scale=-1.0, shift=1.0, name="one_minus")
    b.linear(b.flatten(x), 10, name="fc")
    g = lower_training(b.build())
    assert "plus.grad" not in g
    assert g.op("half.grad").kind == g.op("one_minus.grad").kind == "scalar_grad"
    assert g.op("half.grad").saved == () and g.op("half.grad").attrs["scale"] == 0.5
    assert g.op("conv.grad_weight").inputs[0] == "half.grad"   # x + 3 passed dy through
    with pytest.raises(WorkloadError, match="two kernels"):
        b.scalar(x, scale=2.0, shift=1.0)


def test_product_gradients_have_their_factors_shapes_for_any_broadcast():
    hypothesis = pytest.importorskip("hypothesis")
    st = hypothesis.strategies

    @hypothesis.settings(max_examples=40, deadline=None)
    @hypothesis.given(c=st.integers(1, 6), h=st.integers(1, 5), w=st.integers(1, 5),
                      keep=st.tuples(st.booleans(), st.booleans(), st.booleans()),
                      swap=st.booleans())
    def check(c, h, w, keep, swap):
        b = GraphBuilder("p", (c, h, w), batch=2)
        image = b.input()
        x = b.conv2d(image, c, 1, name="conv")
        small = tuple(d if k else 1 for d, k in zip((c, h, w), keep, strict=True))
        pooled = b.adaptive_avgpool(b.conv2d(image, small[0], 1, name="gate_conv"), small[1:])
        gate = b.reshape(b.flatten(pooled), (2, *small))   # through a view, as SE code does
        y = b.mul(gate, x) if swap else b.mul(x, gate)
        b.linear(b.flatten(y), 3)
        g = lower_training(b.build())
        grads = [op for op in g if op.kind == "mul_grad"]
        assert len(grads) == 2
        for op in grads:
            factor = g.op(g.op(op.forward).inputs[op.attrs["factor"]])
            assert op.out.shape == factor.out.shape
            dy = op.in_specs[0].numel
            assert op.flops == (dy if op.out.numel == dy else 2 * dy)
        assert training_memory(g).activations_bytes > 0
    check()


@pytest.mark.parametrize("optimizer, read, written", [("sgd", 2, 1), ("sgd-momentum", 3, 2),
                                                      ("adam", 4, 3), ("adamw", 4, 3)])
def test_an_update_moves_the_weight_gradient_and_state_of_its_optimizer(optimizer, read,
                                                                        written):
    train = lower_training(small_net(), optimizer)
    update = train.op("fc.update")
    assert update.attrs["optimizer"] == optimizer
    assert update.bytes_read == read * update.param_bytes
    assert update.bytes_written == written * update.param_bytes
    assert training_memory(train).optimizer_bytes == (read - 2) * update.param_bytes \
        + (read - 2) * train.op("conv.update").param_bytes


def test_adam_steps_cost_more_arithmetic_than_sgd():
    flops = {o: lower_training(small_net(), o).op("fc.update").flops
             for o in ("sgd", "sgd-momentum", "adam", "adamw")}
    assert flops["sgd"] < flops["sgd-momentum"] < flops["adam"] < flops["adamw"]


@pytest.mark.parametrize("optimizer", ["sgd", "sgd-momentum", "adam", "adamw"])
def test_the_update_kernel_steps_the_weights_as_its_optimizer_does(optimizer):
    torch = pytest.importorskip("torch")
    from validation.calibrate.torch_ops import KernelState, op_kernel
    train = lower_training(small_net(), optimizer)
    update = train.op("fc.update")
    state = KernelState(graph=train)
    kernel = op_kernel(update, state)
    before = [p.clone() for p in state.params_of(update)]
    grads = [torch.ones_like(p) for p in before]
    state.grads["fc"] = grads
    kernel()
    after = state.params_of(update)
    moments = state.optimizer_state["fc"]
    assert all(len(m) == {"sgd": 0, "sgd-momentum": 1}.get(optimizer, 2) for m in moments)
    # torch.optim's step of the same gradients from zero state, the first step
    params = [p.clone().requires_grad_() for p in before]
    for p, g in zip(params, grads, strict=True):
        p.grad = g.clone()
    opt = {"sgd": lambda ps: torch.optim.SGD(ps, lr=0.01),
           "sgd-momentum": lambda ps: torch.optim.SGD(ps, lr=0.01, momentum=0.9),
           "adam": lambda ps: torch.optim.Adam(ps, lr=0.01),
           "adamw": lambda ps: torch.optim.AdamW(ps, lr=0.01)}[optimizer](params)
    opt.step()
    for old, mine, theirs in zip(before, after, params, strict=True):
        if not optimizer.startswith("adam"):
            assert torch.allclose(mine, theirs.detach())
        else:
            # Adam's first step moves each weight by about lr against the gradient; the
            # kernel, whose step size leaves out the bias correction, by another amount the
            # same way (its timing, not its values, is what it is for)
            assert torch.equal(torch.sign(old - mine), torch.sign(old - theirs.detach()))
            assert (old - mine).abs().min() > 0


def test_a_slice_is_contiguous_only_where_every_dimension_outside_it_is_one():
    assert slice_contiguous((1, 256, 28, 28), 1, "nchw")
    assert not slice_contiguous((16, 256, 28, 28), 1, "nchw")
    assert not slice_contiguous((1, 256, 28, 28), 1, "nhwc")     # one block per pixel
    assert slice_contiguous((1, 256, 1, 1), 1, "nhwc")
    assert slice_contiguous((16, 256, 28, 28), 0, "nchw")        # a batch slice
    assert slice_contiguous((16, 256, 28, 28), -4, "nhwc")
