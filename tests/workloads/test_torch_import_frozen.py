"""from_torch on models whose user froze some parameters (requires_grad=False: a fine-tuned
model's backbone): the frozen layers are held, but get no weight gradient, no update and no
optimizer state, and a frozen prefix makes no backward at all, as in autograd."""
import pytest

torch = pytest.importorskip("torch")
nn, F = torch.nn, torch.nn.functional

from benchmarks.import_sweep import torch_flops  # noqa: E402
from tests.workloads.torchvision_zoo import matmul_flops  # noqa: E402
from workloads import from_torch  # noqa: E402
from workloads.graph import WorkloadError  # noqa: E402
from workloads.training import lower_training, training_memory  # noqa: E402


class Tuned(nn.Module):
    """A frozen backbone (a conv, a norm, a linear read as F.linear) and a trained head."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 16, 3, padding=1)
        self.norm = nn.BatchNorm2d(16)
        self.proj = nn.Parameter(torch.randn(32, 16))
        self.head = nn.Linear(32, 5)

    def forward(self, x):
        x = self.norm(self.conv(x)).relu().mean((2, 3))
        return self.head(F.linear(x, self.proj))


def frozen(model, *names):
    for name, p in model.named_parameters():
        if name.split(".")[0] in names:
            p.requires_grad_(False)
    return model


def trained_updates(model, g):
    """The elements each update steps, checked against the parameters autograd trains."""
    train = lower_training(g)
    stepped = sum(op.params for op in train.phase("update"))
    assert stepped == sum(p.numel() for p in model.parameters() if p.requires_grad)
    return train


def test_a_frozen_backbone_gets_no_gradient_and_no_update():
    torch.manual_seed(0)
    x = torch.randn(2, 3, 8, 8)
    model = frozen(Tuned().eval(), "conv", "norm", "proj")
    g = from_torch(model, x)
    assert matmul_flops(g) == torch_flops(model, x)
    assert g.params() == sum(p.numel() for p in model.parameters())   # all held
    train = trained_updates(model, g)
    # the head alone is differentiated: its weight's gradient, nothing before it
    backward = [op for op in train.phase("backward") if op.kind != "softmax_xent_grad"]
    assert {op.forward for op in backward} == {"head"}
    assert [op.kind for op in backward] == ["linear_grad_weight"]
    head = sum(p.numel() for p in model.head.parameters())
    mem = training_memory(train)
    assert mem.weights_bytes == 4 * g.params()
    assert mem.gradients_bytes == 4 * head
    assert mem.optimizer_bytes == 4 * head   # sgd-momentum: one buffer per trained value


def test_a_frozen_layer_inside_still_passes_the_input_gradient():
    """Trained layers before a frozen one: the frozen linear makes its input's gradient (the
    trained conv below needs it) but not its weight's."""
    torch.manual_seed(0)
    model = frozen(Tuned().eval(), "proj")
    g = from_torch(model, torch.randn(2, 3, 8, 8))
    train = trained_updates(model, g)
    of_proj = [op.kind for op in train.phase("backward") if op.forward == "linear"]
    assert of_proj == ["linear_grad_input"]
    assert all(op.params == 0 for op in train.phase("backward") if op.forward == "linear")


def test_nothing_frozen_trains_everything():
    model = Tuned().eval()
    g = from_torch(model, torch.randn(2, 3, 8, 8))
    assert "frozen_params" not in g.meta
    trained_updates(model, g)


def test_a_layer_frozen_in_part_is_refused_naming_it():
    model = Tuned().eval()
    model.head.bias.requires_grad_(False)   # BitFit's converse: the weight alone trained
    with pytest.raises(WorkloadError, match=r"(?s)head.*freezes 1 of its 2 parameters"):
        from_torch(model, torch.randn(2, 3, 8, 8))
