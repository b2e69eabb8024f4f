"""from_torch on models as users write them (tests/workloads/torch_user_models.py, and
test_torch_import's CIFAR ResNet of functional calls): nanoGPT and minGPT, a LLaMA-style
decoder, an MLP-Mixer, U-Nets, ConvNeXt's hand-written LayerNorm, einsum, torch.where,
gathers, OrderedDict and tuple or dict outputs.
Each imports with PyTorch's own convolution and matrix-product FLOPs and the module's
parameters, replays in PyTorch and lowers for training; the new kinds' kernels are what
autograd computes (test_torch_import_user_kinds.py); the command line on a user's file, and
what stays out of scope, in test_torch_import_user_cli.py."""
import copy

import pytest

torch = pytest.importorskip("torch")
nn = torch.nn
F = torch.nn.functional

from tests.workloads import torch_user_llama as ul  # noqa: E402
from tests.workloads import torch_user_models as um  # noqa: E402
from tests.workloads.test_torch_import import CifarResNet  # noqa: E402
from tests.workloads.torchvision_zoo import matmul_flops  # noqa: E402
from validation.calibrate.torch_exec import GraphModule  # noqa: E402
from workloads import from_torch  # noqa: E402
from workloads.training import lower_training  # noqa: E402


def _last_tensor(out):
    """The tensor a model returns, or of a tuple or dict the one computed last."""
    if isinstance(out, dict):
        out = tuple(out.values())
    return [t for t in out if t is not None][-1] if isinstance(out, tuple) else out


def _torch_flops(model, x) -> int:
    """PyTorch's count on the meta device, in training mode (SDPA runs as the two products
    the counter counts there)."""
    from torch.utils.flop_counter import FlopCounterMode
    meta = copy.deepcopy(model).to("meta").train()
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        meta(x.to("meta"))
    return counter.get_total_flops()


def imported(model, x, trained: int | None = None):
    """The graph, checked against PyTorch's FLOPs, the module's parameters (a tied one
    once) and its output shape, replayed in PyTorch and lowered for training (its updates
    cover `trained` parameters: all of them unless given)."""
    model.eval()
    g = from_torch(model, x)
    assert matmul_flops(g) == pytest.approx(_torch_flops(model, x), rel=1e-9)
    assert g.params() == sum(p.numel() for p in model.parameters())
    shape = tuple(_last_tensor(model(x)).shape)
    assert g.topo()[-1].out.shape == shape
    assert tuple(GraphModule(g)(x).shape) == shape
    updated = sum(op.params for op in lower_training(g).phase("update"))
    assert updated == (g.params() if trained is None else trained)
    return g


def tokens():
    return torch.randint(0, 256, (2, 16), generator=torch.Generator().manual_seed(0))


def image():
    return torch.randn(2, 3, 32, 32)


def sequence():
    return torch.randn(2, 16, 32)


MODELS = {
    "nanogpt": lambda: (um.GPT(), tokens()),                  # logits of the last position
    "nanogpt-all-positions": lambda: (um.GPT(last_only=False), tokens()),
    "nanogpt-flash": lambda: (um.GPT(flash=True, last_only=False), tokens()),
    "mingpt-newgelu": lambda: (um.GPT(gelu=um.NewGELU(), last_only=False), tokens()),
    "gpt-gelu-tanh": lambda: (um.GPT(gelu=nn.GELU(approximate="tanh")), tokens()),
    "llama-repeat-interleave": lambda: (ul.Llama(), tokens()),
    "llama-expand": lambda: (ul.Llama(gqa="expand"), tokens()),
    "llama-interleaved-rotary": lambda: (ul.Llama(interleaved=True), tokens()),
    "llama2c-heads-after-sequence": lambda: (ul.Llama(seq_first=True), tokens()),
    "llama-meta-complex-rotary": lambda: (ul.Llama(complex_rotary=True), tokens()),
    "mlp-mixer": lambda: (um.MLPMixer(), image()),
    "unet-transposed": lambda: (um.UNet(), image()),
    "unet-bilinear": lambda: (um.UNet(bilinear=True, resize=True), image()),
    "resnet-functional": lambda: (CifarResNet(), image()),   # F.relu, F.avg_pool2d, view
    "convnext-layernorm": lambda: (um.ConvNeXtMini(), image()),
    "ordered-sequential": lambda: (um.ordered_sequential(), image()),
    "tuple-output": lambda: (um.TwoHeads(), image()),
    "dict-output": lambda: (um.TwoHeads(as_dict=True), image()),
    "tuple-read-inside": lambda: (um.HeadsJoined(as_dict=False), image()),
    "dict-read-inside": lambda: (um.HeadsJoined(as_dict=True), image()),
}


@pytest.mark.parametrize("name", sorted(MODELS))
def test_a_user_model_imports_with_pytorchs_flops_and_parameters(name):
    torch.manual_seed(0)
    imported(*MODELS[name]())


@pytest.mark.parametrize("as_dict", [False, True])
def test_every_returned_tensor_takes_a_loss_and_trains_its_head(as_dict):
    """As loss = cross_entropy(logits) + loss(boxes): two losses, each head's weights get a
    gradient, and the body's features sum the two heads' input gradients."""
    g = lower_training(from_torch(um.TwoHeads(as_dict).eval(), image()))
    losses = {op.inputs[0]: op.attrs["classes"] for op in g if op.kind == "softmax_xent"}
    assert sorted(losses.values()) == [4, 10]
    heads = [op.name for op in g if op.kind == "linear"]
    assert sorted(losses) == sorted(heads)
    assert {op.forward for op in g if op.kind == "linear_grad_weight"} == set(heads)
    (acc,) = [op for op in g if op.kind == "grad_accumulate"]
    assert {g.op(i).forward for i in acc.inputs} == set(heads)
    assert {op.forward for op in g.phase("update")} >= set(heads)


@pytest.mark.parametrize("as_dict", [False, True])
def test_several_outputs_import_every_head(as_dict):
    """The forward graph holds both heads, whichever is returned last."""
    model, x = um.TwoHeads(as_dict), image()
    g = from_torch(model.eval(), x)
    assert matmul_flops(g) == pytest.approx(_torch_flops(model, x), rel=1e-9)
    assert g.params() == sum(p.numel() for p in model.parameters())
    assert [op.out.shape for op in g if op.kind == "linear"] == [(2, 10), (2, 4)]


def test_nanogpt_ties_its_output_layer_and_picks_the_last_position():
    g = imported(um.GPT(), tokens())
    (picked,) = [op for op in g if op.kind == "index_select"]
    assert picked.attrs == {"dim": 1, "index": (15,)} and picked.out.shape == (2, 1, 64)
    assert picked.bytes_read == picked.out.nbytes            # a gather reads the rows it picks
    assert g.meta["shared_params"] == {"lm_head": "transformer.wte"}   # counted once
    assert g.op("lm_head").params == 0 and g.op("transformer.wte").params == 256 * 64


def test_gqa_by_repeat_interleave_is_the_repeat_kv_graph():
    from tests.workloads.graph_compare import costs
    a, b = (from_torch(ul.Llama(gqa=gqa).eval(), tokens()) for gqa in
            ("repeat_interleave", "expand"))
    assert [op.kind for op in a].count("repeat_heads") == 4
    assert costs(a) == costs(b)


def test_convnexts_channels_first_layernorm_is_the_arithmetic_pytorch_runs():
    g = imported(nn.Sequential(nn.Conv2d(3, 16, 4, 4), um.LayerNorm2d(16)), image())
    kinds = [op.kind for op in g if op.kind not in ("input", "conv2d", "permute")]
    # u = x.mean(1); s = (x - u).pow(2).mean(1); (x - u) / sqrt(s + eps) * w + b
    assert kinds == ["mean", "sub", "pow", "mean", "sub", "scalar", "sqrt", "div",
                     "layer_scale", "bias_add"]
    means = [op for op in g if op.kind == "mean"]
    assert all(op.out.shape == (2, 8, 8, 1) for op in means)   # over the channels, kept


class EinsumAttention(nn.Module):
    def __init__(self, spaced):
        super().__init__()
        self.qkv, self.proj, self.spaced = nn.Linear(32, 96), nn.Linear(32, 32), spaced

    def forward(self, x):
        B, N, C = x.shape
        q, k, v = self.qkv(x).reshape(B, N, 3, 4, C // 4).permute(2, 0, 3, 1, 4)
        eq = ("b h i d, b h j d -> b h i j", "b h i j, b h j d -> b h i d") if self.spaced \
            else ("bhid,bhjd->bhij", "bhij,bhjd->bhid")
        s = torch.einsum(eq[0], q, k) * (C // 4) ** -0.5
        o = torch.einsum(eq[1], s.softmax(-1), v)
        return self.proj(torch.einsum("bhnd->bnhd", o).reshape(B, N, C))


class EinsumLinear(nn.Module):
    def __init__(self, transposed):
        super().__init__()
        self.w = nn.Parameter(torch.randn(48, 32) if transposed else torch.randn(32, 48))
        self.b, self.transposed = nn.Parameter(torch.zeros(48)), transposed

    def forward(self, x):
        eq = "bnd,ed->bne" if self.transposed else "bnd,de->bne"
        return torch.einsum(eq, x, self.w) + self.b


@pytest.mark.parametrize("body", [EinsumAttention(False), EinsumAttention(True),
                                  EinsumLinear(False), EinsumLinear(True)],
                         ids=["attention", "attention-spaced", "linear", "linear-transposed"])
def test_einsum_in_its_common_forms(body):
    g = imported(nn.Sequential(body, nn.Flatten(), nn.Linear(16 * body_width(body), 10)),
                 sequence())
    if isinstance(body, EinsumLinear):
        assert [op.kind for op in g][1:3] == ["linear", "bias_add"]


def body_width(body) -> int:
    return 48 if isinstance(body, EinsumLinear) else 32


class Masked(nn.Module):
    """Scores filled where a causal buffer says, with torch.where."""

    def __init__(self, fill_like):
        super().__init__()
        self.fc, self.fill_like = nn.Linear(32, 32), fill_like
        self.register_buffer("mask", torch.tril(torch.ones(16, 16, dtype=torch.bool)))

    def forward(self, x):
        y = self.fc(x)
        s = y @ y.transpose(-1, -2)
        fill = torch.full_like(s, float("-inf")) if self.fill_like else float("-inf")
        return torch.where(self.mask, s, fill).softmax(-1) @ y


@pytest.mark.parametrize("fill_like", [False, True])
def test_torch_where_with_a_constant_condition_is_a_mask_fill(fill_like):
    g = imported(nn.Sequential(Masked(fill_like), nn.Flatten(), nn.Linear(512, 10)), sequence())
    (fill,) = [op for op in g if op.kind == "masked_fill"]
    assert fill.attrs["value"] == float("-inf")


class Picked(nn.Module):
    """Rows picked by constant indices: a list, index_select of a buffer, a gather."""

    def __init__(self, how):
        super().__init__()
        self.fc, self.how = nn.Linear(32, 32), how
        self.register_buffer("rows", torch.tensor([3, 1, 1, 0]))

    def forward(self, x):
        y = self.fc(x)
        if self.how == "list":
            return y[:, [3, 1, 1, 0]]
        if self.how == "index_select":
            return y.index_select(1, self.rows)
        return torch.gather(y, 1, self.rows.view(1, -1, 1).expand(y.size(0), -1, y.size(2)))


@pytest.mark.parametrize("how", ["list", "index_select", "gather"])
def test_rows_picked_by_a_constant_index_are_one_gather(how):
    g = imported(nn.Sequential(Picked(how), nn.Flatten(), nn.Linear(128, 10)), sequence())
    (picked,) = [op for op in g if op.kind == "index_select"]
    assert picked.attrs == {"dim": 1, "index": (3, 1, 1, 0)}


class Patches(nn.Module):
    """Patches as columns (nn.Unfold or F.unfold), embedded by a linear layer."""

    def __init__(self, module):
        super().__init__()
        self.unfold = nn.Unfold(kernel_size=4, stride=4) if module else None
        self.proj, self.head = nn.Linear(48, 32), nn.Linear(32, 10)

    def forward(self, x):
        cols = self.unfold(x) if self.unfold is not None else F.unfold(x, 4, stride=4)
        return self.head(self.proj(cols.transpose(1, 2)).mean(1))


class UnfoldConv(nn.Module):
    """A 3x3 convolution written as im2col (overlapping, padded blocks) and W @ cols, after
    a 1x1 convolution (so the columns need a gradient)."""

    def __init__(self):
        super().__init__()
        self.stem, self.weight = nn.Conv2d(3, 3, 1), nn.Parameter(torch.randn(8, 27))
        self.fc = nn.Linear(8, 10)

    def forward(self, x):
        cols = F.unfold(self.stem(x), kernel_size=3, padding=1)
        return self.fc((self.weight @ cols).mean(-1))


@pytest.mark.parametrize("model", [Patches(True), Patches(False), UnfoldConv()],
                         ids=["nn.Unfold", "F.unfold", "unfold-matmul"])
def test_unfold_is_one_copy_of_the_blocks(model):
    g = imported(model, image())
    (cols,) = [op for op in g if op.kind == "unfold"]
    expected = (2, 48, 64) if isinstance(model, Patches) else (2, 27, 1024)
    assert cols.out.shape == expected and cols.bytes_written == cols.out.nbytes
    if isinstance(model, UnfoldConv):   # the columns' gradient folds back into the map
        (fold,) = [op for op in lower_training(g) if op.kind == "unfold_grad"]
        assert fold.out.shape == (2, 3, 32, 32)


def test_the_interleaved_rotary_pairs_are_strided_views_then_stacked():
    g = from_torch(ul.Llama(interleaved=True).eval(), tokens())
    assert "index_select" not in [op.kind for op in g]
    strided = {op.name for op in g if op.name.rsplit(".", 1)[-1].startswith("strided")}
    assert len(strided) == 16 and not [    # read by neg and stack: no copy of the views
        op for op in g if op.kind == "contiguous" and op.inputs[0] in strided]
    columns = [op.attrs["start"] for op in g if op.kind == "slice" and op.out.shape[-1] == 1]
    assert columns[:2] == [0, 1] and len(columns) == 8      # q and k in two layers


class LibraryIdioms(nn.Module):
    """What GPT-J, DeBERTa and LeViT write: sin and cos split from one constant table and
    repeated pair by pair, a mask per sample multiplied in, scores divided by a one-value
    tensor, and a map subsampled by x[:, ::2, ::2] of (N, H, W, C)."""

    def __init__(self):
        super().__init__()
        self.proj = nn.Linear(32, 32)
        self.register_buffer("sincos", torch.randn(16, 32))
        self.register_buffer("scale", torch.tensor(4.0))

    def forward(self, x):
        sin, cos = torch.split(self.sincos[None], 16, dim=-1)
        sin, cos = sin.repeat_interleave(2, 2), cos.repeat_interleave(2, 2)
        y = self.proj(x) * cos + x * sin
        y = y * torch.ones(x.shape[:2], device=x.device).unsqueeze(2)
        y = (y @ y.transpose(1, 2) / self.scale).softmax(-1) @ y
        return y.view(x.size(0), 4, 4, 32)[:, ::2, ::2].reshape(x.size(0), -1)


def test_what_libraries_write_by_hand_imports():
    g = imported(nn.Sequential(LibraryIdioms(), nn.Linear(128, 10)), sequence())
    kinds = [op.kind for op in g]
    assert kinds.count("mul_table") == 2           # cos and sin, constants of the trace
    assert kinds.count("masked_fill") == 1         # the per-sample mask
    scale = next(op for op in g if op.kind == "scalar")
    assert scale.attrs["scale"] == 0.25            # / a one-value buffer
    assert "index_select" not in kinds              # rows, then columns: strided views
    assert kinds.count("contiguous") == 1          # copied by the reshape that cannot view


class LastToken(nn.Module):
    """A classifier reading each sequence's last token before the padding (GPT-2's)."""

    def __init__(self):
        super().__init__()
        self.emb, self.fc = nn.Embedding(256, 32), nn.Linear(32, 2)

    def forward(self, ids):
        lengths = (ids != 0).int().sum(-1) - 1
        return self.fc(self.emb(ids)[torch.arange(ids.size(0)), lengths])


def test_a_position_per_sample_from_the_ids_is_one_row_taken_per_sample():
    """Which row each sample's position picks depends on the ids; the copy's cost does not."""
    g = imported(LastToken(), tokens())
    (take,) = [op for op in g if op.kind == "take_per_sample"]
    assert take.out.shape == (2, 32)
    grads = [op for op in lower_training(g) if op.forward == take.name]
    assert [op.kind for op in grads] == ["take_per_sample_grad"]
    assert grads[0].out.shape == (2, 16, 32)


# -- every training policy runs them ------------------------------------------------------
TRAINING_POLICIES = {"sequential": {}, "data-parallel": {}, "swap": {}, "swap-all": {},
                     "recompute": {}, "gpipe": {"micro_batches": 2}, "pipedream": {},
                     "pipeline-stale": {}}


@pytest.mark.parametrize("model", ["nanogpt-all-positions", "llama-repeat-interleave",
                                   "unet-transposed", "convnext-layernorm"])
@pytest.mark.parametrize("policy", sorted(TRAINING_POLICIES))
def test_every_training_policy_runs_an_imported_user_model(model, policy):
    from simulator.api import simulate
    from simulator.cluster import Cluster
    net, x = MODELS[model]()
    g = from_torch(net.eval(), x)
    devices = 1 if policy in ("sequential", "recompute") else 2
    result = simulate(g, Cluster.build("v100", devices, "nvlink2"), policy,
                      **TRAINING_POLICIES[policy])
    assert result.ok and result.iteration_time_s > 0
