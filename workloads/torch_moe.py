"""How torch_import lowers a mixture-of-experts block (Hugging Face's Mixtral layout: a top-k
router `gate` (or `router`: PhiMoE, GraniteMoE, Jamba, Llama 4) with a (E, D) weight and
`top_k`, and `experts` holding every expert's gated MLP as (E, 2I, D) `gate_up_proj` and (E, D,
I) `down_proj` tensors, or (E, D, 2I) and (E, I, D) read by torch.bmm: Llama 4). Which
tokens an expert gets depends on the router's values, so the block is traced as one module and
costed by a routing model with fixed shapes:

- "expected" (the default): each of the S x k token choices of a sample goes to one expert,
  spread evenly, so expert e runs its MLP on S x k / E rows (the first S x k mod E experts one
  more). That is the load a balanced router gives, and the total is exact whatever the
  routing: every token runs through k experts, so the FLOPs are PyTorch's.
- "dense": every expert runs on all S tokens (an upper bound: E / k times the experts' work,
  what a model that computes every expert and masks them does). Experts whose forward takes
  the tokens alone (Llama 4's, fed every token for every expert) are dense whatever the
  option says: that is what PyTorch runs.

The graph: the router's linear layer and softmax over the experts; per expert, its tokens
gathered (an index_select copy of the rows routed to it), the gate and up projection, the
activation times up, the down projection; the outputs concatenated to (N, S, m, D) (m = k, or
E for dense), weighted by m of the router's probabilities (a slice standing in for top-k's
selection: the same shape, and its gradient reaches the router as top-k's does) and summed
over m. A shared expert every token runs (Qwen2-MoE's, a gated MLP scaled by the sigmoid of a
one-output gate; DeepSeek-V3's `shared_experts`, unscaled) is added to that sum. A router
with a score-correction bias (DeepSeek-V3's `e_score_correction_bias`) scores the experts
with a sigmoid, the others with a softmax. Not costed: top-k's search and the renormalisation of
the k weights (S x E values), and the sort of tokens by expert beyond the gather.

`MoELowering` is a mixin of `torch_import._Lowering`. torch is never imported here.
"""
from __future__ import annotations

from .torch_state import LoweringState

MOE_ROUTINGS = ("expected", "dense")


def moe_router(m):
    """Block `m`'s top-k router: its `gate` (Mixtral, Qwen-MoE, DeepSeek-V3) or its `router`
    (PhiMoE, GraniteMoE, Jamba), None where it has neither."""
    gate = getattr(m, "gate", None)
    return gate if gate is not None else getattr(m, "router", None)


def expert_sizes(m) -> tuple[int, int, int] | None:
    """(experts E, width D, expert width I) of block `m`, or None where it is not a block this
    lowering models: a top-k router with an (E, D) weight, and experts holding their gated MLPs
    as two 3-D tensors and nothing else, (E, 2I, D) `gate_up_proj` and (E, D, I) `down_proj`
    (Mixtral's layout) or (E, D, 2I) and (E, I, D) (Llama 4's, read by torch.bmm)."""
    gate, experts = moe_router(m), getattr(m, "experts", None)
    weight = getattr(gate, "weight", None)
    up, down = getattr(experts, "gate_up_proj", None), getattr(experts, "down_proj", None)
    if not all(hasattr(t, "shape") for t in (weight, up, down)) or \
            not isinstance(getattr(gate, "top_k", None), int):
        return None
    assert weight is not None and up is not None and down is not None and experts is not None
    if {n for n, _ in experts.named_parameters()} != {"gate_up_proj", "down_proj"}:
        return None   # biases of their own (GPT-OSS's): another computation
    if len(weight.shape) != 2 or len(up.shape) != 3 or len(down.shape) != 3:
        return None
    e, d = tuple(weight.shape)
    if tuple(up.shape[::2]) == (e, d) and tuple(down.shape[:2]) == (e, d) and \
            up.shape[1] == 2 * down.shape[2]:
        return e, d, int(down.shape[2])
    if tuple(up.shape[:2]) == (e, d) and down.shape[0] == e and down.shape[2] == d and \
            up.shape[2] == 2 * down.shape[1]:
        return e, d, int(down.shape[1])
    return None


def is_moe_block(m) -> bool:
    """Whether module `m` is a mixture-of-experts block this lowering models."""
    return expert_sizes(m) is not None


def runs_every_expert(m) -> bool:
    """Whether block `m`'s experts are given the tokens alone, no choice of experts
    (Llama 4's `experts(routed_in)`: every expert runs on every token, the router's scores,
    zero where an expert was not chosen, multiplied in): then its cost is the dense one."""
    import inspect
    try:
        params = inspect.signature(m.experts.forward).parameters
    except (TypeError, ValueError):
        return False
    return len(params) == 1


def run_moe_block(torch, m, args, kwargs):
    """What block `m` returns on its inputs. On the meta device its routing has no shapes to
    give (which tokens an expert gets, `torch.where` on the router's choices, needs values):
    there the block's output is a tensor of its input's shape, the (N, S, D) the lowering
    makes of it whatever the routing, as it returns on the CPU."""
    x = args[0] if args else None
    try:
        return m(*args, **kwargs)
    except Exception:   # any error of a data-dependent op on meta tensors
        if isinstance(x, torch.Tensor) and x.is_meta:
            return torch.empty_like(x)
        raise


class MoELowering(LoweringState):
    moe_routing = "expected"

    def _moe_block(self, m, node, x):
        x = x()
        shape = self.b.spec(x).shape
        gate, sizes = moe_router(m), expert_sizes(m)
        assert sizes is not None
        (e, _, inter), k = sizes, int(gate.top_k)
        if len(shape) != 3:
            raise self.unsupported(f"routes a tensor of shape {shape}; only (N, S, D) "
                                   "sequences are supported")
        n, s, d = shape
        dense = self.moe_routing == "dense" or runs_every_expert(m)
        if not dense and s * k < e:
            raise self.unsupported(f"routes {s} tokens x {k} choices to {e} experts, fewer "
                                   "than one each; the expected load needs S x k >= E (or "
                                   "moe_routing='dense')")
        act = self._expert_activation(m.experts.act_fn)
        router = self.b.linear(x, e, bias=False, name=self.name("gate"))
        if hasattr(gate, "e_score_correction_bias"):   # DeepSeek-V3's: sigmoid scores
            probs = self._activation(router, "sigmoid", {}, self.name("gate.sigmoid"))
        else:
            probs = self.b.softmax(router, -1, name=self.name("gate.softmax"))
        rows = [s] * e if dense else [s * k // e + (i < s * k % e) for i in range(e)]
        outs, start = [], 0
        for i, r in enumerate(rows):
            prefix = f"experts.{i}"
            taken = x if dense else self._op(
                "index_select", [x], (n, r, d), self.name(f"{prefix}.dispatch"),
                {"dim": 1, "index": tuple(p // k for p in range(start, start + r))})
            start += r
            up = self.b.linear(taken, 2 * inter, bias=False,
                               name=self.name(f"{prefix}.gate_up_proj"))
            gated = self._activation(self.b.slice(up, 0, inter, dim=2,
                                                  name=self.name(f"{prefix}.gate")),
                                     *act, self.name(f"{prefix}.act"))
            h = self.b.mul(gated, self.b.slice(up, inter, 2 * inter, dim=2,
                                               name=self.name(f"{prefix}.up")),
                           name=self.name(f"{prefix}.mul"))
            out = self.b.linear(h, d, bias=False, name=self.name(f"{prefix}.down_proj"))
            outs.append(self.b.reshape(out, (n, s, 1, d), name=self.name(f"{prefix}.view"))
                        if dense else out)
        chosen = e if dense else k
        stacked = self.b.concat(outs, dim=2, name=self.name("experts.cat")) if dense else \
            self.b.reshape(self.b.concat(outs, dim=1, name=self.name("experts.cat")),
                           (n, s, k, d), name=self.name("experts.view"))
        weights = self.b.reshape(self.b.slice(probs, 0, chosen, dim=2,
                                              name=self.name("gate.top_k")),
                                 (n, s, chosen, 1), name=self.name("gate.weights"))
        weighted = self.b.mul(stacked, weights, name=self.name("experts.weighted"))
        moved = self.b.permute(weighted, (0, 1, 3, 2), name=self.name("experts.permute"))
        routed = self._op("sum", [moved], (n, s, d), self.name("experts.sum"),
                          {"reduced_dims": 1, "keepdim": False})
        shared = getattr(m, "shared_expert", None) or getattr(m, "shared_experts", None)
        out = routed if shared is None else \
            self.b.add(routed, self._shared_expert(m, shared, x), name=self.name("add"))
        meta = node.meta.get("tensor_meta")
        if isinstance(meta, (tuple, list)) and not isinstance(meta, self.TensorMetadata):
            # Llama 4's (N * S, D) rows and router logits
            self.rows_nodes.add(node)
            return out, router
        return out

    def _shared_expert(self, m, mlp, x: str) -> str:
        """A shared expert: a gated MLP (gate_proj, up_proj, down_proj) every token runs,
        scaled by the sigmoid of a one-output `shared_expert_gate` where the block has one
        (Qwen2-MoE's `shared_expert`) or not (DeepSeek-V3's `shared_experts`), added to the
        routed experts' sum."""
        nn, gate = self.nn, getattr(m, "shared_expert_gate", None)
        projections = [getattr(mlp, p, None) for p in ("gate_proj", "up_proj", "down_proj")]
        if not all(isinstance(p, nn.Linear) for p in projections) or gate is not None and \
                (not isinstance(gate, nn.Linear) or gate.out_features != 1):
            raise self.unsupported("has a shared expert other than a gated MLP (gate_proj, "
                                   "up_proj, down_proj), scaled by a one-output "
                                   "shared_expert_gate or not; only that one is supported")
        g, u, down = projections
        name = "shared_expert" if getattr(m, "shared_expert", None) is mlp else "shared_experts"

        def linear(t, layer, name):
            return self.b.linear(t, layer.out_features, bias=layer.bias is not None,
                                 name=self.name(name))
        act_fn = getattr(mlp, "act_fn", None) or getattr(mlp, "activation_fn", None)
        act = self._activation(linear(x, g, f"{name}.gate_proj"),
                               *self._expert_activation(act_fn), self.name(f"{name}.act"))
        h = self.b.mul(act, linear(x, u, f"{name}.up_proj"), name=self.name(f"{name}.mul"))
        y = linear(h, down, f"{name}.down_proj")
        if gate is None:
            return y
        weight = self._activation(linear(x, gate, "shared_expert_gate"), "sigmoid", {},
                                  self.name("shared_expert_gate.sigmoid"))
        return self.b.mul(y, weight, name=self.name("shared_expert.scaled"))

    def _expert_activation(self, act) -> tuple[str, dict]:
        """(kind, attributes) of the experts' activation: an nn activation module, or
        Hugging Face's SiLUActivation (x * sigmoid(x), as nn.SiLU)."""
        if type(act).__name__ == "SiLUActivation":
            return "silu", {}
        nn = self.nn
        if type(act) in (nn.SiLU, nn.GELU, nn.Tanh, nn.Sigmoid, nn.Mish):
            return self._module_activation(act)
        raise self.unsupported(f"has experts with the activation {type(act).__name__}; only "
                               "torch.nn's activations and SiLUActivation are supported")
