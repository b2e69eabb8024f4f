"""The orders in which each partition of a pipeline runs its units, ("F" or "B", minibatch),
one sequence per partition: the stale-weight paper's cycles, PipeDream's and Megatron's 1F1B,
GPipe's all-forwards-then-all-backwards, and no pipelining. PipelineEmitter
(_pipeline.emit_sequences) runs them."""
from __future__ import annotations

from ._pipeline import Unit


def stale_sequences(k: int, n: int) -> list[list[Unit]]:
    """The paper's cycles: in cycle c partition p (0-based) runs B of minibatch c-(2k-1-p),
    then F of minibatch c-p; every stage takes one cycle, so a minibatch crosses 2k stages."""
    seqs = []
    for p in range(k):
        seq: list[Unit] = []
        for c in range(n + 2 * k):
            b, f = c - (2 * k - 1 - p), c - p
            if 0 <= b < n:
                seq.append(("B", b))
            if 0 <= f < n:
                seq.append(("F", f))
        seqs.append(seq)
    return seqs


def one_f_one_b_sequences(k: int, n: int) -> list[list[Unit]]:
    """PipeDream's 1F1B: partition p admits k-p minibatches, then alternates B and F."""
    seqs = []
    for p in range(k):
        warm = min(k - p, n)
        seq: list[Unit] = [("F", i) for i in range(warm)]
        for j in range(n):
            seq.append(("B", j))
            if j + warm < n:
                seq.append(("F", j + warm))
        seqs.append(seq)
    return seqs


def sequential_sequences(k: int, first: int, n: int) -> list[list[Unit]]:
    """No pipelining: each minibatch goes all the way through before the next one starts."""
    return [[u for i in range(first, first + n) for u in (("F", i), ("B", i))]
            for _ in range(k)]


def gpipe_sequences(k: int, n: int) -> list[list[Unit]]:
    """Every forward, then every backward, last micro-batch first."""
    order: list[Unit] = [("F", i) for i in range(n)]
    order += [("B", i) for i in reversed(range(n))]
    return [list(order) for _ in range(k)]
