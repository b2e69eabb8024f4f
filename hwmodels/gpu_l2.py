"""What a GPU's L2 cache saves a training step in DRAM traffic, from the part's L2 size alone
(catalog/gpus.toml l2_bytes: 6 MB on a V100, 40 MB on an A100, 50 MB on an H100).

- A kernel that passes over its input more than once (batch norm: the statistics, then the
  normalisation; its gradient: the reductions, then the apply) reads it from DRAM once where
  the input fits in the L2: the first pass leaves it there for the second (`extra_passes`).
- A kernel's read of a tensor the kernel just before it on the stream wrote comes from the L2
  where everything that kernel touched (its inputs, its weights and its output) fits in the L2:
  the L2 is write-back, and nothing has run since to evict the lines it wrote (`L2Reuse`).
  Views (reshapes) and ops the framework folds into the kernel before them pass the tensor
  on. A tensor written by an earlier kernel (an activation saved in the forward and read in
  the backward) comes from DRAM.
Both rules take the L2 as holding whatever fits in it: they leave out what else shares it
(the other partition's copies on an A100 or H100, the page tables) and the replacement
policy, so they lean to the L2 keeping a little more than it does. The writes still reach
DRAM (a dirty line is written back when evicted), so only reads are saved. At the batches
that fill a GPU most activations are far larger than the L2 (ResNet-50's at batch 256 in half
precision: 25-400 MB a layer), and these rules move little; at small batches and in
transformers' layers (BERT-large at 64 x 128 tokens: 16 MB a hidden state) they move more.
"""
from __future__ import annotations

from workloads.graph import Op


def fits(nbytes: float, l2_bytes: int | None) -> bool:
    """Whether `nbytes` fit in an L2 of `l2_bytes` (a part with no L2 size keeps nothing)."""
    return bool(l2_bytes) and nbytes <= float(l2_bytes or 0)


def extra_passes(op: Op, passes: float, l2_bytes: int | None) -> float:
    """DRAM bytes of a kernel's passes over its inputs beyond the first (`passes` in all):
    none where the inputs fit in the L2."""
    inputs = float(sum(s.nbytes for s in op.in_specs))
    return 0.0 if fits(inputs, l2_bytes) else (passes - 1.0) * inputs


class L2Reuse:
    """Follows one stream's kernels in issue order: which tensors the L2 holds because the
    kernel just before wrote them. `state` (a launch queue's dict, or None) carries that across
    calls, so ops issued in several calls reuse as in one."""

    KEY = "l2_written"

    def __init__(self, l2_bytes: int | None, state: dict | None = None) -> None:
        self.l2_bytes = l2_bytes
        self.state = state if state is not None else {}
        self.written: frozenset[str] = frozenset(self.state.get(self.KEY, ()))

    def hit_bytes(self, op: Op, passes_through: bool = False) -> float:
        """Bytes of `op`'s reads the L2 serves, then `op` is the last kernel. passes_through:
        the op launches no kernel of its own (a view, a fused op): its output is the tensor
        it reads."""
        if passes_through:
            if self.written.intersection(op.inputs):
                self._set(self.written | {op.name})
            return 0.0
        hit = float(sum(s.nbytes for name, s in zip(op.inputs, op.in_specs, strict=True)
                        if name in self.written))
        touched = sum(s.nbytes for s in op.in_specs) + op.param_bytes + op.out.nbytes
        self._set(frozenset({op.name}) if fits(touched, self.l2_bytes) else frozenset())
        return hit

    def _set(self, written: frozenset[str]) -> None:
        self.written = written
        self.state[self.KEY] = tuple(sorted(written))
