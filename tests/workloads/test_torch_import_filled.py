"""from_torch on a tensor made by new_empty and filled by copy_ into slices of its last
dimension, as Hugging Face's DeepSeek-V3 attention builds its keys (the part without position
and the rotary part shared by the heads, expanded over them): one concat of the sources
(the expanded one first copied over the heads), with PyTorch's FLOPs and the module's
parameters; copies that leave part of the tensor unwritten are refused naming the op."""
import pytest

torch = pytest.importorskip("torch")
nn = torch.nn
F = torch.nn.functional

from tests.workloads.test_torch_import_user_models import imported  # noqa: E402
from workloads import from_torch  # noqa: E402
from workloads.graph import WorkloadError  # noqa: E402
from workloads.training import lower_training  # noqa: E402


class LatentAttention(nn.Module):
    """DeepSeek-V3's attention, small: keys and values from a latent, the key's rotary part
    one per token for every head, the key assembled by copies into a new_empty tensor."""

    def __init__(self, dim=32, heads=4, nope=8, rope=4, v=8, latent=16, whole=True):
        super().__init__()
        self.h, self.nope, self.rope, self.v, self.latent, self.whole = \
            heads, nope, rope, v, latent, whole
        self.q = nn.Linear(dim, heads * (nope + rope))
        self.kv_a = nn.Linear(dim, latent + rope)
        self.kv_b = nn.Linear(latent, heads * (nope + v))
        self.o = nn.Linear(heads * v, dim)

    def forward(self, x):
        n, s, _ = x.shape
        q = self.q(x).view(n, s, self.h, -1).transpose(1, 2)
        kv, k_rot = torch.split(self.kv_a(x), [self.latent, self.rope], dim=-1)
        k_rot = k_rot.reshape(n, 1, s, self.rope)
        kv = self.kv_b(kv).view(n, s, self.h, -1).transpose(1, 2)
        k_nope, v = torch.split(kv, [self.nope, self.v], dim=-1)
        key = kv.new_empty(n, self.h, s, self.nope + self.rope)
        key[..., :self.nope].copy_(k_nope)
        if self.whole:
            key[..., self.nope:].copy_(k_rot.expand(-1, self.h, -1, -1))
        y = F.scaled_dot_product_attention(q, key, v, is_causal=True)
        return self.o(y.transpose(1, 2).reshape(n, s, -1))


def test_a_key_made_by_copies_into_new_empty_is_one_concat():
    torch.manual_seed(0)
    g = imported(LatentAttention(), torch.randn(2, 6, 32))
    (key,) = [op for op in g if op.kind == "concat"]
    assert key.out.shape == (2, 4, 6, 12) and key.attrs["dim"] == 3
    (shared,) = [op for op in g if op.kind == "repeat_heads"]   # the rotary part, per head
    assert shared.in_specs[0].shape == (2, 1, 6, 4) and shared.out.shape == (2, 4, 6, 4)
    assert shared.name in key.inputs
    train = lower_training(g)
    assert any(op.kind == "repeat_heads_grad" for op in train)   # summed over the heads


def test_copies_that_leave_part_of_the_tensor_unwritten_are_refused():
    with pytest.raises(WorkloadError, match=r"scaled_dot_product_attention at module path "
                                            r"'<top>': reads a tensor made by new_empty "
                                            r"\(2, 4, 6, 12\) whose copies do not write"):
        from_torch(LatentAttention(whole=False), torch.randn(2, 6, 32))
