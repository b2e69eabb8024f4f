"""from_torch on code as users write it (tests/workloads/torch_user_code.py): a custom
autograd Function, gradient checkpointing, in-place ops, Python control flow, SDPA with a
boolean mask buffer, a network of functional calls and a loop over chunks summed over the
positions import with PyTorch's own FLOPs and the module's parameters, replay in PyTorch and
train; a mixture of experts is costed by its expected load (or the dense bound); a sum (the
kind `sum`) and its gradient are autograd's; a learned (heads, Q, K) mask is an
attention_bias; what stays out (a mask computed from a parameter, a sum over the batch) is
refused by name."""
import pytest

torch = pytest.importorskip("torch")
F = torch.nn.functional

from torch import nn  # noqa: E402

from benchmarks.import_sweep import torch_flops  # noqa: E402
from tests.workloads import torch_user_code as uc  # noqa: E402
from tests.workloads.test_torch_import_user_kinds import _kernel  # noqa: E402
from tests.workloads.test_torch_import_user_models import imported  # noqa: E402
from tests.workloads.torchvision_zoo import matmul_flops  # noqa: E402
from workloads import from_torch  # noqa: E402
from workloads.graph import WorkloadError  # noqa: E402
from workloads.training import lower_training  # noqa: E402

REFUSED: dict[str, str] = {}


@pytest.mark.parametrize("name", sorted(set(uc.CASES) - set(REFUSED) -
                                         {"mixture-of-experts"}))   # its own test below
def test_user_code_imports_with_pytorchs_flops_and_parameters(name):
    torch.manual_seed(0)
    imported(*uc.CASES[name]())


def test_every_op_refused_is_named_with_its_module_path_in_one_error():
    class Scaled(uc.MaskedAttention):
        def forward(self, x):
            n, t, c = x.shape
            q, k, v = self.qkv(x).view(n, t, 3, 4, c // 4).permute(2, 0, 3, 1, 4)
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=self.bias.tanh())
            return self.out(y.transpose(1, 2).reshape(n, t, c))
    with pytest.raises(WorkloadError) as err:
        from_torch(Scaled(learned=True).eval(), torch.randn(2, 16, 32))
    lines = str(err.value).splitlines()   # one error, a line for each op refused
    assert lines[0] == "Scaled: 2 unsupported ops (2 calls):"
    assert lines[1].startswith("  - Tensor.tanh at module path '<top>': needs a tensor")
    assert lines[2].startswith("  - torch._C._nn.scaled_dot_product_attention at module path "
                               "'<top>': adds a mask computed from parameter 'bias'")


def test_a_learned_mask_is_an_attention_bias_holding_it():
    g = from_torch(uc.MaskedAttention(learned=True).eval(), torch.randn(2, 16, 32))
    (bias,) = [op for op in g if op.kind == "attention_bias"]
    assert bias.params == 4 * 16 * 16 and bias.attrs["table_shape"] == (4, 256)


def test_a_sum_over_positions_is_a_permute_and_a_sum_and_its_gradient_is_autograds():
    g = from_torch(uc.ChunkLoop().eval(), torch.randn(2, 32, 32))
    (total,) = [op for op in g if op.kind == "sum"]
    assert total.in_specs[0].shape == (2, 32, 32) and total.out.shape == (2, 32)
    assert total.attrs == {"reduced_dims": 1, "keepdim": False}
    x = torch.randn(2, 3, 5, requires_grad=True)
    y = x.sum((1, 2), keepdim=True)
    dy = torch.randn_like(y)
    y.backward(dy)
    forward, _ = _kernel("sum", [x.shape], tuple(y.shape), reduced_dims=2, keepdim=True)
    assert torch.allclose(forward(x.detach()), y.detach())
    backward, _ = _kernel("sum_grad", [y.shape], tuple(x.shape), reduced_dims=2,
                          keepdim=True)
    assert torch.equal(backward(dy), x.grad)


def test_a_sum_over_the_batch_is_refused():
    class Total(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = torch.nn.Linear(4, 4)

        def forward(self, x):
            return self.fc(x).sum()
    with pytest.raises(WorkloadError, match=r"Tensor.sum at module path '<top>'.*only the "
                                            "sum over dimensions after the batch"):
        from_torch(Total(), torch.randn(2, 4))


class _MaskToken(torch.nn.Module):
    """A mask token read only when a mask is given (DINOv2's, BEiT's)."""

    def __init__(self):
        super().__init__()
        self.embed = torch.nn.Linear(8, 16)
        self.mask_token = torch.nn.Parameter(torch.zeros(1, 1, 16))

    def forward(self, x, mask=None):
        h = self.embed(x)
        if mask is not None:
            h = torch.where(mask[..., None], self.mask_token, h)
        return h


def test_a_parameter_the_forward_never_reads_is_named_and_held_by_no_op():
    g = from_torch(_MaskToken(), torch.randn(2, 4, 8))
    assert g.meta["unread_params"] == {"mask_token": 16}
    assert g.params() == 8 * 16 + 16
    assert "unread_params" not in from_torch(uc.ChunkLoop(), torch.randn(2, 32, 32)).meta


def test_a_mixture_of_experts_costs_the_expected_load_by_default_or_the_dense_bound():
    """Top-k routing in Mixtral's layout: by default each expert runs on S x k / E of a
    sample's tokens, so the FLOPs are PyTorch's whatever the router picks (every token runs
    through k experts); moe_routing='dense' runs every expert on every token."""
    from validation.calibrate.torch_exec import GraphModule
    torch.manual_seed(0)
    model, x = uc.CASES["mixture-of-experts"]()
    expected = from_torch(model.eval(), x)
    assert matmul_flops(expected) == torch_flops(model, x)   # on the CPU: routing needs values
    assert expected.params() == sum(p.numel() for p in model.parameters())
    assert sum(op.params for op in lower_training(expected).phase("update")) == \
        expected.params()
    assert tuple(GraphModule(expected)(x).shape) == (2, 16, 10)
    (moe,) = [op for op in expected if op.name == "moes.0.experts.0.dispatch"]
    assert moe.kind == "index_select" and moe.out.shape == (2, 8, 32)   # 16 x 2 / 4 rows
    assert expected.op("moes.0.experts.sum").out.shape == (2, 16, 32)
    dense = from_torch(model, x, moe_routing="dense")
    experts_flops = 2 * 2 * 16 * 2 * (2 * 64 * 32 + 32 * 64) * 2   # N S k (up + down) layers
    assert matmul_flops(dense) - matmul_flops(expected) == experts_flops * (4 / 2 - 1)
    assert dense.params() == expected.params()
    assert "dispatch" not in " ".join(op.name for op in dense)
    with pytest.raises(WorkloadError, match="moe_routing 'sparse' is not one of expected, "
                                            "dense"):
        from_torch(model, x, moe_routing="sparse")


def test_too_few_tokens_for_every_expert_is_refused_with_the_dense_bound_suggested():
    model = uc.MoEModel(experts=8, top_k=1)
    with pytest.raises(WorkloadError, match=r"routes 4 tokens x 1 choices to 8 experts.*"
                                            "moe_routing='dense'"):
        from_torch(model, torch.randn(2, 4, 32))
    assert from_torch(model, torch.randn(2, 4, 32), moe_routing="dense").params() == \
        sum(p.numel() for p in model.parameters())


def test_a_weight_normed_layer_holds_g_and_v():
    g = from_torch(uc.WeightNormed().eval(), torch.randn(2, 12, 16))
    conv = [op for op in g if op.name == "conv"]
    assert conv[0].params == 1 * 1 * 8 + 16 * 4 * 8 + 16    # g (1, 1, 8), v, bias
    assert g.op("fc").params == 10 + 10 * 16 + 10            # g (10, 1), v, bias


def test_einsum_with_a_3d_weight_is_the_linear_layer_it_computes():
    g = from_torch(uc.EinsumHeads().eval(), torch.randn(2, 16, 32))
    project, merge = [op for op in g if op.kind == "linear"]
    assert (project.attrs["in_features"], project.attrs["out_features"]) == (32, 4 * 8)
    assert (merge.attrs["in_features"], merge.attrs["out_features"]) == (4 * 8, 32)
    assert project.params == merge.params == 4 * 8 * 32
    with pytest.raises(WorkloadError, match=r"einsum 'btc,hdc->bhtd' of a tensor and "
                                            r"parameter 'w' \(4, 8, 32\); only a parameter "
                                            "contracted with the tensor's trailing"):
        from_torch(_Einsum("btc,hdc->bhtd"), torch.randn(2, 16, 32))


class _Einsum(torch.nn.Module):
    def __init__(self, equation):
        super().__init__()
        self.w, self.equation = torch.nn.Parameter(torch.randn(4, 8, 32)), equation

    def forward(self, x):
        return torch.einsum(self.equation, x, self.w)


class GatedMLP(nn.Module):
    def __init__(self, dim, hidden):
        super().__init__()
        self.gate_proj, self.up_proj = nn.Linear(dim, hidden, bias=False), \
            nn.Linear(dim, hidden, bias=False)
        self.down_proj, self.act_fn = nn.Linear(hidden, dim, bias=False), nn.SiLU()

    def forward(self, x):
        return self.down_proj(self.act_fn(self.gate_proj(x)) * self.up_proj(x))


class SharedExpertMoE(uc.MoEBlock):
    """Qwen2-MoE's block: Mixtral's routed experts plus a shared expert every token runs,
    scaled by the sigmoid of a one-output gate."""

    def __init__(self, shared=None):
        super().__init__(dim=32, hidden=64, experts=4, top_k=2)
        self.shared_expert = shared or GatedMLP(32, 48)
        self.shared_expert_gate = nn.Linear(32, 1, bias=False)

    def forward(self, x):
        return super().forward(x) + \
            torch.sigmoid(self.shared_expert_gate(x)) * self.shared_expert(x)


def imported_block(block):
    """The graph of `block` and a head on (2, 8, 32) tokens, checked against PyTorch's FLOPs
    and parameters, every parameter updated once."""
    torch.manual_seed(0)
    model, x = nn.Sequential(block, nn.Linear(32, 10)).eval(), torch.randn(2, 8, 32)
    g = from_torch(model, x)
    assert matmul_flops(g) == torch_flops(model, x)
    assert g.params() == sum(p.numel() for p in model.parameters())
    assert sum(op.params for op in lower_training(g).phase("update")) == g.params()
    return g


def test_a_shared_expert_is_a_gated_mlp_every_token_runs_added_to_the_routed_sum():
    torch.manual_seed(0)
    g = imported_block(SharedExpertMoE())
    down = g.op("0.shared_expert.down_proj")
    assert down.kind == "linear" and down.in_specs[0].shape == (2, 8, 48)
    assert g.op("0.shared_expert.scaled").out.shape == (2, 8, 32)


def test_a_shared_expert_other_than_a_gated_mlp_is_refused_by_name():
    model = nn.Sequential(SharedExpertMoE(shared=nn.Linear(32, 32)), nn.Linear(32, 10))
    with pytest.raises(WorkloadError, match="has a shared expert other than a gated MLP"):
        from_torch(model.eval(), torch.randn(2, 8, 32))


class SigmoidRouter(uc.TopKRouter):
    """DeepSeek-V3's router: sigmoid scores, a score-correction bias for the choice."""

    def __init__(self, dim, experts, top_k):
        super().__init__(dim, experts, top_k)
        self.register_buffer("e_score_correction_bias", torch.zeros(experts))

    def forward(self, x):
        scores = F.linear(x, self.weight).sigmoid()
        index = (scores + self.e_score_correction_bias).topk(self.top_k, dim=-1)[1]
        weights = scores.gather(-1, index)
        return weights / weights.sum(-1, keepdim=True), index


class SharedExpertsMoE(uc.MoEBlock):
    """DeepSeek-V3's block: sigmoid routing and shared experts added unscaled."""

    def __init__(self):
        super().__init__(dim=32, hidden=64, experts=4, top_k=2)
        self.gate = SigmoidRouter(32, 4, 2)
        self.shared_experts = GatedMLP(32, 48)

    def forward(self, x):
        return super().forward(x) + self.shared_experts(x)


def test_shared_experts_without_a_gate_are_added_and_a_sigmoid_router_scores():
    torch.manual_seed(0)
    model, x = nn.Sequential(SharedExpertsMoE(), nn.Linear(32, 10)).eval(), torch.randn(2, 8, 32)
    g = from_torch(model, x)
    assert matmul_flops(g) == torch_flops(model, x)
    assert g.params() == sum(p.numel() for p in model.parameters())
    assert g.op("0.shared_experts.down_proj").in_specs[0].shape == (2, 8, 48)
    assert g.op("0.add").inputs[1] == "0.shared_experts.down_proj"    # unscaled
    assert "0.gate.sigmoid" in g and "0.gate.softmax" not in g


class RouterMoE(uc.MoEBlock):
    """PhiMoE's, GraniteMoE's and Jamba's block: Mixtral's layout, its router named `router`."""

    def __init__(self):
        super().__init__(dim=32, hidden=64, experts=4, top_k=2)
        self.router = self.gate
        del self.gate

    def forward(self, x):
        n, s, d = x.shape
        rows = x.reshape(n * s, d)
        return self.experts(rows, *self.router(rows)).reshape(n, s, d)


def test_a_router_named_router_routes_as_a_gate_does():
    torch.manual_seed(0)
    g = imported_block(RouterMoE())
    assert g.op("0.gate").params == 4 * 32 and "0.gate.softmax" in g


class DenseRouter(nn.Linear):
    """Llama 4's router: the top-k logits kept, the others -inf, all through a sigmoid."""

    def __init__(self, dim, experts, top_k):
        super().__init__(dim, experts, bias=False)
        self.top_k = top_k

    def forward(self, x):
        logits = super().forward(x)
        value, index = torch.topk(logits, self.top_k, dim=1)
        scores = torch.full_like(logits, float("-inf")).scatter_(1, index, value)
        return torch.sigmoid(scores), logits


class BmmExperts(nn.Module):
    """Llama 4's experts: (E, D, 2I) and (E, I, D) weights read by torch.bmm, every expert on
    every token it is given."""

    def __init__(self, dim, hidden, experts):
        super().__init__()
        self.gate_up_proj = nn.Parameter(torch.randn(experts, dim, 2 * hidden) * 0.1)
        self.down_proj = nn.Parameter(torch.randn(experts, hidden, dim) * 0.1)
        self.act_fn = nn.SiLU()

    def forward(self, x):
        x = x.view(self.gate_up_proj.shape[0], -1, x.shape[-1])
        gate, up = torch.bmm(x, self.gate_up_proj).chunk(2, dim=-1)
        return torch.bmm(up * self.act_fn(gate), self.down_proj).view(-1, x.shape[-1])


class EveryExpertMoE(nn.Module):
    """Llama 4's block: the tokens repeated for every expert and scaled by its score (zero
    where it was not chosen), a shared expert added; returns (rows, router logits)."""

    def __init__(self, dim=32, hidden=64, experts=4, top_k=1):
        super().__init__()
        self.router = DenseRouter(dim, experts, top_k)
        self.experts = BmmExperts(dim, hidden, experts)
        self.shared_expert = GatedMLP(dim, 48)
        self.shared_expert.activation_fn = self.shared_expert.act_fn

    def forward(self, x):
        rows = x.reshape(-1, x.shape[-1])
        scores, logits = self.router(rows)
        routed = rows.repeat(scores.shape[1], 1) * scores.transpose(0, 1).reshape(-1, 1)
        out = self.experts(routed).reshape(scores.shape[1], -1, rows.shape[-1]).sum(dim=0)
        return self.shared_expert(rows) + out, logits


class EveryExpertDecoder(nn.Module):
    def __init__(self):
        super().__init__()
        self.moe, self.head = EveryExpertMoE(), nn.Linear(32, 10)

    def forward(self, x):
        out, _ = self.moe(x)
        return self.head(x + out.view(x.shape))


def test_experts_given_every_token_are_costed_dense_whatever_the_routing_option():
    torch.manual_seed(0)
    model, x = EveryExpertDecoder().eval(), torch.randn(2, 8, 32)
    for routing in ("expected", "dense"):
        g = from_torch(model, x, moe_routing=routing)
        assert matmul_flops(g) == torch_flops(model, x)     # E x the tokens, as PyTorch runs
        assert g.params() == sum(p.numel() for p in model.parameters())
        assert sum(op.params for op in lower_training(g).phase("update")) == g.params()
        ups = [op for op in g if op.name.endswith("gate_up_proj")]
        assert [op.in_specs[0].shape for op in ups] == [(2, 8, 32)] * 4
        assert g.op("moe.shared_expert.down_proj").out.shape == (2, 8, 32)


@pytest.mark.parametrize("library, name", [("transformers", "qwen2-moe"),
                                           ("transformers", "qwen3-moe"),
                                           ("transformers", "mixtral"),
                                           ("transformers", "phimoe"),
                                           ("transformers", "granitemoe"),
                                           ("transformers", "llama4")])
def test_the_libraries_models_import_with_pytorchs_flops(library, name):
    from tests.workloads.test_torch_import_learned_bias import imports_with_pytorchs_flops
    imports_with_pytorchs_flops(library, name)
