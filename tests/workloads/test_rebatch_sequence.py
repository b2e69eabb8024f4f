"""A pipeline's micro-batch of a sequence model (GPipe's `rebatch`) is the model built at that
batch: every op's shapes and attributes, the copies of permuted views (`source_shape`) and the
per-sample dropout masks (`mask_shape`) included, so a replayed micro-batch reshapes as
PyTorch does."""
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

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
        "llama": t.llama(batch, layers=2, hidden=32, heads=4, kv_heads=2, intermediate=48,
                         vocab_size=50, seq_len=16),
    }


def described(g):
    return [(op.name, op.kind, [s.shape for s in op.in_specs], op.out.shape, op.attrs,
             op.params, op.flops, op.bytes_moved) for op in g.topo()]


@pytest.mark.parametrize("name", ["gpt", "vit", "bert", "llama"])
def test_a_rebatched_transformer_is_the_transformer_built_at_that_batch(name):
    split, fresh = rebatch(builds(8)[name], 2), builds(2)[name]
    assert any(op.kind == "contiguous" for op in fresh)
    assert described(split) == described(fresh)


@settings(max_examples=15, deadline=None)
@given(micro=st.integers(1, 4), micro_batches=st.integers(2, 4), seq_len=st.integers(1, 24),
       heads=st.sampled_from([1, 2, 4]), causal=st.booleans())
def test_any_micro_batch_of_a_decoder_is_the_decoder_built_at_it(micro, micro_batches, seq_len,
                                                                heads, causal):
    """Whatever the batch, sequence and heads, a micro-batch equals a fresh build."""
    def build(batch):
        if causal:
            return t.gpt2(batch, width=16, depth=1, heads=heads, seq_len=seq_len,
                          vocab_size=20, max_positions=24, attention="naive")
        return t.vit(batch, width=16, depth=1, heads=heads, mlp=32, patch=4,
                     input_size=4 * min(seq_len, 6), num_classes=3, attention="naive")
    assert described(rebatch(build(micro * micro_batches), micro)) == described(build(micro))


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
