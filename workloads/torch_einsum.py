"""How torch_import lowers `torch.einsum` of two operands: as the batched matrix product
PyTorch's einsum runs (torch.bmm on permuted operands), with permutes and reshapes around it.

The equation's letters fall into four groups: batch letters (in both operands and the
output), contracted letters (in both operands, not the output), and the free letters of each
operand (in one operand and the output). Operand a is permuted to (batch, free of a,
contracted) and operand b to (batch, contracted, free of b); where a group has more or fewer
than one letter its dimensions are merged (or a unit one made) by a reshape, which copies a
permuted view as PyTorch's reshape does. The product is then reshaped and permuted to the
output's letters. Its FLOPs are the product's, as torch.utils.flop_counter counts them.

One operand whose letters are only reordered ('bhnd->bnhd') is the permute PyTorch returns (a
view); a parameter contracted with a tensor's trailing dimensions ('bnd,de->bne',
'btc,hdc->bthd') is the linear layer it computes; a learned table contracted with a one-hot
lookup buffer (timm's MaxViT-TF relative position bias) is the table gathered
(torch_import_tables.table_lookup). `EinsumLowering` is a mixin of
`torch_import._Lowering`. Refused, with the equation: another einsum of one operand, three
operands or more, an ellipsis, a letter repeated in one operand (a diagonal), a letter summed
out of one operand alone. torch is never imported here.
"""
from __future__ import annotations

import math

from .errors import WorkloadError
from .torch_layers import _Param
from .torch_state import LoweringState


def parse_einsum(equation: str, ranks: tuple[int, ...]) -> tuple[str, str, str] | str:
    """(a, b, out) letters of a two-operand equation (spaces ignored), or why it is refused."""
    eq = equation.replace(" ", "")
    if "..." in eq:
        return "uses an ellipsis"
    if "->" not in eq:
        return "has no explicit output ('->')"
    lhs, out = eq.split("->")
    operands = lhs.split(",")
    if len(operands) != 2 or len(ranks) != 2:
        return f"has {len(operands)} operands; only two-operand contractions are supported"
    a, b = operands
    if not all(s.isalpha() and s.isascii() or s == "" for s in (a, b, out)):
        return "has characters other than letters"
    for letters, rank in zip((a, b), ranks, strict=True):
        if len(letters) != rank:
            return f"names {len(letters)} dimensions of an operand of rank {rank}"
    for letters in (a, b, out):
        if len(set(letters)) != len(letters):
            return f"repeats a letter in {letters!r} (a diagonal)"
    if set(out) - set(a) - set(b):
        return "has output letters in no operand"
    lonely = [c for c in a + b if c not in out and not (c in a and c in b)]
    if lonely:
        return f"sums {''.join(lonely)!r} out of one operand alone"
    return a, b, out


class EinsumLowering(LoweringState):
    def einsum_handlers(self, torch) -> dict:
        """Functions lowered here."""
        return {torch.einsum: self._einsum, torch.functional.einsum: self._einsum}

    def _einsum(self, node):
        equation, *operands = node.args
        if len(operands) == 1 and isinstance(operands[0], (tuple, list)):
            operands = list(operands[0])
        if len(operands) == 1:
            return self._einsum_permute(str(equation), self.tensor(operands[0]))
        if len(operands) == 2 and (found := self.table_lookup(
                str(equation), self.value(operands[0]), self.value(operands[1]),
                node)) is not None:
            return found
        if len(operands) == 2 and isinstance(self.value(operands[1]), _Param):
            return self._einsum_weight(str(equation), self.tensor(operands[0]),
                                       self.value(operands[1]))
        tensors = [self.tensor(x) for x in operands]
        ranks = tuple(len(self.b.spec(t).shape) for t in tensors)
        parsed = parse_einsum(str(equation), ranks)
        if isinstance(parsed, str):
            raise self.unsupported(f"einsum {equation!r} {parsed}")
        a_letters, b_letters, out = parsed
        x, y = tensors
        sizes = {**dict(zip(b_letters, self.b.spec(y).shape, strict=True)),
                 **dict(zip(a_letters, self.b.spec(x).shape, strict=True))}
        batch = [c for c in out if c in a_letters and c in b_letters]
        free_a = [c for c in out if c in a_letters and c not in b_letters]
        free_b = [c for c in out if c in b_letters and c not in a_letters]
        summed = [c for c in a_letters if c in b_letters and c not in out]

        def arranged(t, letters, order, rows, cols, base):
            """t permuted to `order`, then seen as (batch..., rows, cols)."""
            dims = tuple(letters.index(c) for c in order)
            if dims != tuple(range(len(dims))):
                t = self._permuted(t, dims, f"einsum_{base}_t")
            shape = self.b.spec(t).shape
            nb = len(batch)
            want = (*shape[:nb], math.prod(sizes[c] for c in rows),
                    math.prod(sizes[c] for c in cols))
            if shape != want:
                t = self._checked(self.b.reshape, t, want, f"einsum_{base}_view")
            return t

        lhs = arranged(x, a_letters, batch + free_a + summed, free_a, summed, "a")
        rhs = arranged(y, b_letters, batch + summed + free_b, summed, free_b, "b")
        try:
            product = self.b.batched_matmul(lhs, rhs, name=self.name("einsum"))
        except WorkloadError as exc:   # a batch size that does not broadcast
            raise self.unsupported(f"einsum {equation!r} cannot be lowered: {exc}") from None
        natural = batch + free_a + free_b
        shape = tuple(sizes[c] for c in natural)
        if self.b.spec(product).shape != shape:
            product = self._checked(self.b.reshape, product, shape, "einsum_out_view")
        dims = tuple(natural.index(c) for c in out)
        if dims != tuple(range(len(dims))):
            product = self._permuted(product, dims, "einsum_out_t")
        return product

    def _einsum_permute(self, equation: str, x: str):
        """einsum('bhnd->bnhd', x): the letters reordered, a view (PyTorch's permute)."""
        eq = equation.replace(" ", "")
        lhs, _, out = eq.partition("->")
        rank = len(self.b.spec(x).shape)
        if "->" not in eq or len(lhs) != rank or len(set(lhs)) != rank or \
                sorted(lhs) != sorted(out) or not lhs.isalpha():
            raise self.unsupported(f"einsum {equation!r} of one operand; only a reordering of "
                                   "its letters (a permute) is supported")
        return self._permuted(x, tuple(lhs.index(c) for c in out), "einsum_t")

    def _einsum_weight(self, equation: str, x: str, weight):
        """einsum('bnd,de->bne', x, W) (or 'bnd,ed->bne'; 'btc,hdc->bthd', heads projected
        by a 3-D weight; 'bthd,hdc->btc', heads merged) with a parameter W contracted with
        x's trailing dimensions: the linear layer it computes, without a bias, x's contracted
        dimensions and W's others each seen as one (views, as PyTorch's bmm sees them)."""
        parsed = parse_einsum(equation, (len(self.b.spec(x).shape), len(weight.shape)))
        a, b, out = parsed if not isinstance(parsed, str) else ("", "", "")
        summed = "".join(c for c in a if c in b and c not in out)
        kept = a[:len(a) - len(summed)]
        free = "".join(c for c in b if c not in summed)
        if isinstance(parsed, str) or not weight.is_parameter or not summed or \
                not a.endswith(summed) or summed not in b or out != kept + free or \
                not kept or not free:
            raise self.unsupported(f"einsum {equation!r} of a tensor and parameter "
                                   f"{weight.target!r} {weight.shape}; only a parameter "
                                   "contracted with the tensor's trailing dimensions, its "
                                   "others last in the output in its order (a linear layer), "
                                   "is supported")
        sizes = dict(zip(b, weight.shape, strict=True))
        shape = self.b.spec(x).shape
        if len(summed) > 1:
            x = self._checked(self.b.reshape, x, (*shape[:len(kept)], math.prod(
                sizes[c] for c in summed)), "einsum_view")
        y = self.b.linear(x, math.prod(sizes[c] for c in free), bias=False,
                          name=self.name("linear"))
        self._claim([weight], y)
        if len(free) > 1:
            y = self._checked(self.b.reshape, y, (*shape[:len(kept)], *(sizes[c] for c in free)),
                              "einsum_out_view")
        return y

    def _checked(self, method, t, shape, base):
        try:
            return method(t, shape, name=self.name(base))
        except WorkloadError as exc:   # a reshape that would move the batch
            raise self.unsupported(f"einsum cannot be lowered: {exc}") from None
