"""torch.einsum of two operands imports as the batched product PyTorch runs, with PyTorch's
FLOPs; a learned relative position bias added to the scores imports as one op holding its
table; equations outside two-operand contractions are refused naming the equation."""
import pytest

torch = pytest.importorskip("torch")
nn = torch.nn

from tests.workloads.test_torch_import_transformers import imported  # noqa: E402
from workloads import from_torch  # noqa: E402
from workloads.graph import WorkloadError  # noqa: E402
from workloads.torch_einsum import parse_einsum  # noqa: E402


class Einsums(nn.Module):
    """(N, G, T, D) windows: attention by einsum (MaxViT's spelling with spaces), a product
    with free letters of both operands merged, and an outer product."""

    def __init__(self, equation_scores, equation_context, d=8):
        super().__init__()
        self.qkv, self.head = nn.Linear(d, 3 * d), nn.Linear(d, 4)
        self.scores, self.context = equation_scores, equation_context

    def forward(self, x):
        q, k, v = self.qkv(x).chunk(3, dim=-1)
        s = torch.einsum(self.scores, q, k).softmax(-1)
        y = torch.einsum(self.context, s, v)
        return self.head(y[:, 0, 0])


@pytest.mark.parametrize("scores, context", [
    ("B G I D, B G J D -> B G I J", "B G I J, B G J D -> B G I D"),
    ("ngid,ngjd->ngij", "ngij,ngjd->ngid"),
    ("ngid,ngjd->ngji", "ngji,ngjd->ngid"),        # the output permuted
    ("nigd,njgd->ngij", "ngij,njgd->nigd"),        # heads after the tokens, as often written
])
def test_einsum_attention_has_pytorchs_flops_and_replays(scores, context):
    g = imported(Einsums(scores, context), torch.randn(2, 3, 5, 8))
    assert sum(op.kind == "batched_matmul" for op in g) == 2


class Merged(nn.Module):
    def __init__(self):
        super().__init__()
        self.a, self.b = nn.Linear(6, 12), nn.Linear(6, 6)

    def forward(self, x):   # x (N, 4, 6): (N, i, j*k) x (N, j, ...) contracting two letters
        a = self.a(x).reshape(x.shape[0], 4, 3, 4)          # n i j k
        b = self.b(x).reshape(x.shape[0], 4, 6)[:, :3, :4]  # n j k
        return torch.einsum("nijk,njk->ni", a, b)


def test_an_einsum_contracting_two_letters_has_pytorchs_flops():
    x = torch.randn(2, 4, 6)
    g = from_torch(Merged(), x)
    from tests.workloads.torchvision_zoo import matmul_flops, torch_flops
    assert matmul_flops(g) == pytest.approx(torch_flops(Merged(), x), rel=1e-9)


@pytest.mark.parametrize("equation, ranks, why", [
    ("ii,ij->ij", (2, 2), "diagonal"),
    ("ij,jk,kl->il", (2, 2, 2), "two-operand"),
    ("...ij,...jk->...ik", (3, 3), "ellipsis"),
    ("ij,jk", (2, 2), "explicit output"),
    ("ij,kl->ik", (2, 2), "one operand alone"),
])
def test_equations_outside_two_operand_contractions_are_refused(equation, ranks, why):
    assert why in parse_einsum(equation, ranks)


def test_a_refused_einsum_names_its_equation():
    class Trace(nn.Module):
        def forward(self, x):
            return torch.einsum("nii->ni", x)
    with pytest.raises(WorkloadError, match=r"einsum 'nii->ni'.*"):
        from_torch(Trace(), torch.randn(2, 3, 3))
