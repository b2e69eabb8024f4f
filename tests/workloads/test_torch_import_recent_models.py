"""from_torch on more models as users write them today (tests/workloads/
torch_user_models_recent.py): a Swin-style block, a Conformer, a PointNet and a WaveNet import
with PyTorch's convolution and matrix-product FLOPs (torch.utils.flop_counter) and the
module's parameters, replay in PyTorch and train (every position's logits of a Conformer's
frames and of WaveNet's (N, classes, T) map), and so do the DETR-style detector (nn.Transformer,
learned queries repeated over the batch, a dict of logits and boxes) and the RWKV-style block
(a token shift by ZeroPad2d, 1 - mix on the weights), the CLIP-style head (its product with
a buffer of text features a constant_matmul, its temperature's exp on the weight side) and
the diffusion U-Net with its timesteps held in a buffer (their sinusoids a constant_tensor
the time MLP reads; taking its timesteps as a second input: test_torch_import_inputs.py).
What stays out of scope is refused with one error listing every such op with its module
path. The new kinds' kernels (glu, amax) are autograd's."""
import copy

import pytest

torch = pytest.importorskip("torch")
nn = torch.nn
F = torch.nn.functional

from tests.workloads import torch_user_models_recent as rm  # noqa: E402
from tests.workloads.test_torch_import_user_kinds import _kernel  # noqa: E402
from tests.workloads.test_torch_import_user_models import imported  # noqa: E402
from workloads import from_torch  # noqa: E402
from workloads.graph import WorkloadError  # noqa: E402
from workloads.training import lower_training  # noqa: E402

IMPORTED = {
    "swin-block": lambda: (rm.SwinTiny(), torch.randn(2, 3, 32, 32)),
    "conformer": lambda: (rm.Conformer(), torch.randn(2, 20, 16)),
    "pointnet": lambda: (rm.PointNet(), torch.randn(2, 3, 64)),
    "wavenet": lambda: (rm.WaveNet(), torch.randn(2, 1, 64)),
    "rwkv": lambda: (rm.RWKV(), torch.randint(0, 128, (2, 16))),
    "clip": lambda: (rm.CLIPStyle(), torch.randn(2, 3, 32, 32)),
    "diffusion-unet": lambda: (rm.DiffusionStep(), torch.randn(2, 3, 16, 16)),
}


def trained_by_autograd(model, x) -> int:
    """The parameters a backward pass from the summed output reaches (WaveNet's last
    residual convolution feeds nothing, so autograd gives it no gradient)."""
    model.train()
    model(x).sum().backward()
    model.eval()
    return sum(p.numel() for p in model.parameters() if p.grad is not None)


@pytest.mark.parametrize("name", sorted(IMPORTED))
def test_a_recent_model_imports_with_pytorchs_flops_and_parameters(name):
    torch.manual_seed(0)
    model, x = IMPORTED[name]()
    g = imported(model, x, trained=trained_by_autograd(copy.deepcopy(model), x))
    assert g.params() == sum(p.numel() for p in model.parameters())


def test_detr_with_learned_queries_imports_and_trains_both_heads():
    """nn.Transformer(src, tgt) is its encoder and decoder; the queries
    `weight.unsqueeze(0).repeat(n, 1, 1)` are one learned_queries copy holding the table,
    updated from dy summed over the batch; both heads' (N, queries, C) outputs take a loss."""
    torch.manual_seed(0)
    g = imported(rm.DETR(), torch.randn(2, 3, 32, 32))
    (queries,) = [op for op in g if op.kind == "learned_queries"]
    assert queries.out.shape == (2, 10, 32) and queries.params == 320 and not queries.inputs
    assert any(op.name.startswith("transformer.decoder.layers.0.") for op in g)
    train = lower_training(g)
    assert train.op("learned_queries.grad").kind == "learned_queries_grad"
    assert train.op("learned_queries.update").params == 320
    assert len([op for op in train if op.kind == "softmax_xent"]) == 2


class _WeightSide(nn.Module):
    """A learned temperature (CLIP's logit_scale.exp()) and RWKV's mix, 1 - mix."""

    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(8, 8)
        self.logit_scale = nn.Parameter(torch.tensor(2.0))
        self.mix = nn.Parameter(torch.rand(1, 1, 8))

    def forward(self, x):
        y = self.fc(x)
        return self.logit_scale.exp() * (y * self.mix + x * (1 - self.mix))


def test_computation_on_a_parameter_alone_runs_once_per_step_with_its_gradient():
    """exp(w) and 1 - w: one op each on the weights (no batch dimension, reading no input),
    multiplied into the batch; 1 - w shares the mix read directly, their gradients summed
    into one update; the measured step replays them."""
    torch.manual_seed(0)
    model, x = _WeightSide(), torch.randn(2, 5, 8)
    g = imported(model, x)
    exp, = [op for op in g if op.kind == "weight_exp"]
    rsub, = [op for op in g if op.kind == "weight_affine"]
    assert exp.out.shape == () and exp.params == 1 and not exp.inputs
    assert rsub.out.shape == (1, 1, 8) and (rsub.attrs["scale"], rsub.attrs["shift"]) == (-1, 1)
    assert g.meta["shared_params"][rsub.name] == "layer_scale" and rsub.params == 0
    train = lower_training(g)
    assert train.op(f"{exp.name}.grad").kind == "weight_exp_grad"
    assert train.op(f"{exp.name}.grad").saved == (exp.name,)
    assert train.op(f"{rsub.name}.grad").kind == "weight_affine_grad"
    assert "layer_scale.grad_weight_acc" in train      # the mix's two gradients summed
    assert sum(op.params for op in train.phase("update")) == 8 * 8 + 8 + 1 + 8
    from validation.calibrate.torch_exec import graph_step
    assert torch.isfinite(graph_step(g)())


def test_weight_side_kernels_are_autograds():
    w = torch.randn(1, 1, 8, requires_grad=True)
    dy = torch.randn(1, 1, 8)
    (1 - w).backward(dy)
    grad, state = _kernel("weight_affine_grad", [(1, 1, 8)], (1, 1, 8), scale=-1.0, shift=1.0)
    assert torch.equal(grad(dy), w.grad)
    w.grad = None
    y = w.exp()
    y.backward(dy)
    grad, _ = _kernel("weight_exp_grad", [(1, 1, 8), (1, 1, 8)], (1, 1, 8))
    assert torch.allclose(grad(dy, y.detach()), w.grad)


def test_a_zero_pad_that_crops_is_a_shift_with_autograds_gradient():
    """RWKV's token shift, nn.ZeroPad2d((0, 0, 1, -1)) of (N, T, C): one pad_spatial copy;
    its gradient pads dy back (F.pad's backward), the cropped row getting none."""
    shift = nn.ZeroPad2d((0, 0, 1, -1))
    x = torch.randn(2, 5, 3, requires_grad=True)
    g = from_torch(shift, x.detach())
    (pad,) = [op for op in g if op.kind == "pad_spatial"]
    assert pad.out.shape == (2, 5, 3)
    from validation.calibrate.torch_exec import GraphModule
    assert torch.equal(GraphModule(g)(x.detach()), shift(x.detach()))
    dy = torch.randn(2, 5, 3)
    shift(x).backward(dy)
    grad, _ = _kernel("pad_spatial_grad", [(2, 5, 3)], (2, 5, 3), pad=(-1, 0),
                      pad_before=(1, 0), dims=(1, 2))
    assert torch.equal(grad(dy), x.grad)


def test_an_in_batch_contrastive_product_is_refused_by_name():
    """logits over every pair of the batch (CLIP's training loss) read every sample's
    features in each row: no policy that splits the batch can split them."""
    class Contrastive(nn.Module):
        def __init__(self):
            super().__init__()
            self.image, self.text = nn.Linear(16, 8), nn.Linear(12, 8)

        def forward(self, image, text):
            return self.image(image) @ self.text(text).t()

    with pytest.raises(WorkloadError, match="transposes the batch"):
        from_torch(Contrastive().eval(), (torch.randn(4, 16), torch.randn(4, 12)))


def test_a_tensor_repeated_is_refused_by_name():
    class Repeat(nn.Module):
        def forward(self, x):
            return x.repeat(1, 2)

    with pytest.raises(WorkloadError, match="only a tensor or parameter of a leading 1 "
                                            "repeated over the batch"):
        from_torch(Repeat(), torch.randn(2, 3))


def test_sequence_logits_train_on_every_position():
    """A Conformer's (N, T, classes) from a linear layer: classes last; WaveNet's
    (N, classes, T) from a convolution: classes first, as F.cross_entropy takes them."""
    torch.manual_seed(0)
    frames = lower_training(from_torch(rm.Conformer().eval(), torch.randn(2, 20, 16)))
    (loss,) = [op for op in frames if op.kind == "softmax_xent"]
    assert loss.attrs["classes"] == 20 and "class_dim" not in loss.attrs
    wave = lower_training(from_torch(rm.WaveNet().eval(), torch.randn(2, 1, 64)))
    (loss,) = [op for op in wave if op.kind == "softmax_xent"]
    assert loss.attrs["classes"] == 256 and loss.attrs["class_dim"] == 1


def test_glu_and_the_max_over_points_are_one_op_each():
    torch.manual_seed(0)
    g = from_torch(rm.Conformer().eval(), torch.randn(2, 20, 16))
    glus = [op for op in g if op.kind == "glu"]
    assert len(glus) == 2 and glus[0].out.shape == (2, 32, 20) and glus[0].attrs["dim"] == 1
    g = from_torch(rm.PointNet().eval(), torch.randn(2, 3, 64))
    (top,) = [op for op in g if op.kind == "select_values"]
    assert top.in_specs[0].shape == (2, 256, 64) and top.out.shape == (2, 256, 1)


def test_an_embedding_normalized_to_unit_length_is_one_op():
    """F.normalize(x, dim=-1) (CLIP's embeddings, a cosine classifier's features)."""
    class Cosine(nn.Module):
        def __init__(self):
            super().__init__()
            self.proj, self.head = nn.Linear(16, 32), nn.Linear(32, 10, bias=False)

        def forward(self, x):
            return self.head(F.normalize(self.proj(x), dim=-1))

    g = imported(Cosine(), torch.randn(2, 16))
    (norm,) = [op for op in g if op.kind == "l2_normalize"]
    assert norm.out.shape == (2, 32)
    with pytest.raises(WorkloadError, match="only the L2 norm over a dimension after the batch"):
        from_torch(_Normalize1().eval(), torch.randn(2, 3, 4, 4))


class _Normalize1(nn.Module):
    def forward(self, x):
        return F.normalize(x, p=1.0, dim=1)


def test_the_glu_and_amax_kernels_are_autograds():
    x = torch.randn(2, 8, 5, requires_grad=True)
    F.glu(x, 1).backward(dy := torch.randn(2, 4, 5))
    glu, _ = _kernel("glu", [(2, 8, 5)], (2, 4, 5), dim=1)
    glu_grad, _ = _kernel("glu_grad", [(2, 4, 5), (2, 8, 5)], (2, 8, 5), dim=1)
    assert torch.equal(glu(x.detach()), F.glu(x.detach(), 1))
    assert torch.allclose(glu_grad(dy, x.detach()), x.grad)
    x = torch.randn(2, 6, 7, requires_grad=True)
    top = torch.amax(x, 2)
    top.backward(dy := torch.randn(2, 6))
    amax, _ = _kernel("amax", [(2, 6, 7)], (2, 6), reduced_dims=1, keepdim=False)
    amax_grad, _ = _kernel("amax_grad", [(2, 6), (2, 6, 7), (2, 6)], (2, 6, 7),
                           reduced_dims=1, keepdim=False)
    assert torch.equal(amax(x.detach()), top.detach())
    assert torch.equal(amax_grad(dy, x.detach(), top.detach()), x.grad)


class SubpixelWithLgamma(nn.Module):
    """A sub-pixel upsampling (nn.PixelShuffle) beside a log-gamma of the input: two ops out of
    scope at two module paths."""

    def __init__(self):
        super().__init__()
        self.conv, self.up = nn.Conv2d(3, 12, 3, padding=1), nn.PixelShuffle(2)

    def forward(self, x):
        return self.up(self.conv(torch.lgamma(x)))


REFUSED = {
    # name: (model, input, [(op, module path)] every one of which the single error names)
    "subpixel-lgamma": (SubpixelWithLgamma, (2, 3, 16, 16),
                        [("torch.nn.PixelShuffle", "up"), ("torch.lgamma", "<top>")]),
}


@pytest.mark.parametrize("name", sorted(REFUSED))
def test_what_stays_out_of_scope_is_listed_at_once_with_module_paths(name):
    make, shape, expected = REFUSED[name]
    torch.manual_seed(0)
    x = torch.randn(shape)
    with pytest.raises(WorkloadError) as err:
        from_torch(make().eval(), x)
    text = str(err.value)
    for op, path in expected:
        assert f"{op} at module path" in text and repr(path) in text, (op, path)
    assert "Supported modules:" in text


TRAINING_POLICIES = ["sequential", "caffe", "torch7", "data-parallel", "swap", "swap-all",
                     "recompute", "gpipe", "pipedream", "pipeline-stale", "hybrid"]


def every_training_policy(graph) -> dict[str, float]:
    """The step time of `graph` under every policy that trains on V100s (one or two)."""
    from simulator import Cluster
    from simulator.api import simulate
    times = {}
    for policy in TRAINING_POLICIES:
        devices = 1 if policy in ("sequential", "caffe", "torch7", "swap-all",
                                  "recompute") else 2
        cluster = Cluster.build("v100", devices, "nvlink2" if devices > 1 else None)
        options = {"micro_batches": 2} if policy == "gpipe" else {}
        times[policy] = simulate(graph, cluster, policy, **options).iteration_time_s
    return times


@pytest.mark.parametrize("name", ["two-heads", "wavenet", "conformer", "detr", "rwkv"])
def test_every_training_policy_runs_an_imported_model(name):
    """A tuple output's two losses, a sequence's per-position loss, attention with a
    convolution module, learned queries and weight-side ops, under every policy that
    trains on GPUs."""
    from tests.workloads.torch_user_models import TwoHeads
    torch.manual_seed(0)
    model, x = (TwoHeads(), torch.randn(4, 3, 32, 32)) if name == "two-heads" else \
        (rm.DETR(), torch.randn(2, 3, 32, 32)) if name == "detr" else IMPORTED[name]()
    times = every_training_policy(from_torch(model.eval(),
                                             torch.cat((x, x)) if len(x) == 2 else x))
    assert all(t > 0 for t in times.values())
    assert times["pipedream"] < times["sequential"]      # two stages at once


def test_the_cli_simulates_rwkv_from_a_users_file(tmp_path, capsys):
    import json

    from simulator.cli import main
    path = tmp_path / "net.py"
    path.write_text("from tests.workloads.torch_user_models_recent import RWKV\n")
    argv = ["simulate", "--workload", f"{path}:RWKV", "--workload-option", "input_shape=16",
            "--workload-option", "tokens=128", "--batch", "4", "--hardware", "v100", "--json"]
    assert main([*argv, "--policy", "gpipe", "--devices", "2", "--link", "nvlink2"]) == 0
    assert json.loads(capsys.readouterr().out)["iteration_time_s"] > 0


def test_the_cli_simulates_a_recent_model_from_a_users_file(tmp_path, capsys):
    import json

    from simulator.cli import main
    path = tmp_path / "net.py"
    path.write_text("from tests.workloads.torch_user_models_recent import WaveNet\n")
    argv = ["simulate", "--workload", f"{path}:WaveNet", "--workload-option",
            "input_shape=1x64", "--batch", "4", "--hardware", "v100", "--json"]
    assert main([*argv, "--policy", "sequential"]) == 0
    sequential = json.loads(capsys.readouterr().out)
    assert main([*argv, "--policy", "pipedream", "--devices", "2", "--link", "nvlink2"]) == 0
    assert json.loads(capsys.readouterr().out)["iteration_time_s"] < \
        sequential["iteration_time_s"]
