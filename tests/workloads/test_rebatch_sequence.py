"""A pipeline's micro-batch of a sequence model (GPipe's `rebatch`) is the model built at that
batch: every op's shapes and attributes, the copies of permuted views (`source_shape`) and the
per-sample dropout masks (`mask_shape`) included, so a replayed micro-batch reshapes as
PyTorch does."""
import pytest

from simulator.policies._pipeline import rebatch
from workloads.kinds import kind_of
from workloads.zoo import transformers as t


def builds(batch: int):
    """Small configurations of each transformer of the zoo, at `batch`."""
    return {
        "gpt": t.gpt2(batch, width=32, depth=2, heads=4, seq_len=16, vocab_size=50,
                      max_positions=32, attention="naive"),
        "vit": t.vit(batch, width=32, depth=2, heads=4, mlp=64, patch=8, input_size=32,
                     num_classes=10),
        "bert": t.bert_base(batch, seq_len=16, vocab_size=50, attention="naive"),
    }


def described(g):
    return [(op.name, op.kind, [s.shape for s in op.in_specs], op.out.shape, op.attrs,
             op.params, op.flops, op.bytes_moved) for op in g.topo()]


@pytest.mark.parametrize("name", ["gpt", "vit", "bert"])
def test_a_rebatched_transformer_is_the_transformer_built_at_that_batch(name):
    split, fresh = rebatch(builds(8)[name], 2), builds(2)[name]
    assert any(op.kind == "contiguous" for op in fresh)
    assert described(split) == described(fresh)


def test_a_rebatched_copy_of_a_permuted_view_runs_alone_at_the_new_batch():
    """The copy's kernel run alone views a fresh tensor from its source layout, which must be
    the micro-batch's."""
    torch = pytest.importorskip("torch")
    split = rebatch(builds(8)["bert"], 2)
    copies = [op for op in split if op.kind == "contiguous"]
    assert copies
    for op in copies:
        out = kind_of("contiguous").torch_kernel(op, None)(torch.randn(op.out.shape))
        assert tuple(out.shape) == op.out.shape


def test_a_rebatched_stochastic_depth_draws_one_mask_entry_per_sample():
    torch = pytest.importorskip("torch")
    from workloads import from_torch

    class Block(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.conv, self.drop = torch.nn.Conv2d(3, 4, 3), torch.nn.Dropout2d(0.2)

        def forward(self, x):
            return self.drop(self.conv(x))

    full = from_torch(Block(), torch.randn(8, 3, 8, 8))
    micro = from_torch(Block(), torch.randn(2, 3, 8, 8))
    assert described(rebatch(full, 2)) == described(micro)
