"""A measured step of a model that returns several tensors sums a loss over every one of
them, as training lowers it (workloads/training.py): graph_step and module_step."""
import pytest

torch = pytest.importorskip("torch")

from tests.workloads.torch_user_models import TwoHeads  # noqa: E402
from validation.calibrate.torch_exec import (  # noqa: E402
    GraphModule,
    example_input,
    graph_step,
    module_step,
    returned_tensors,
)
from workloads import from_torch  # noqa: E402
from workloads.training import lower_training, with_losses  # noqa: E402


@pytest.mark.parametrize("as_dict", [False, True])
def test_graph_step_takes_a_loss_of_every_output(as_dict):
    torch.manual_seed(0)
    g = from_torch(TwoHeads(as_dict).eval(), torch.randn(4, 3, 8, 8))
    losses = [op for op in with_losses(g) if op.kind == "softmax_xent"]
    trained = [op for op in lower_training(g) if op.kind == "softmax_xent"]
    assert [op.name for op in losses] == [op.name for op in trained]
    assert len(losses) == 2
    replay = GraphModule(with_losses(g))
    loss = replay(example_input(g))
    assert loss.dim() == 0
    loss.backward()
    # both heads' weights get a gradient; with the last output's loss alone one would not
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in replay.parameters())
    assert torch.isfinite(graph_step(g)())


@pytest.mark.parametrize("as_dict", [False, True])
def test_module_step_trains_every_head(as_dict):
    torch.manual_seed(0)
    model = TwoHeads(as_dict)
    x = torch.randn(4, 3, 8, 8)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    loss = module_step(model, x)()
    after = dict(model.named_parameters())
    assert all(not torch.equal(before[n], after[n]) for n in ("cls.weight", "box.weight"))
    # the sum of both heads' cross-entropies, against the step's fixed targets
    with torch.no_grad():
        logits, boxes = returned_tensors(model(x))
    assert (tuple(logits.shape), tuple(boxes.shape)) == ((4, 10), (4, 4))
    assert loss.dim() == 0 and torch.isfinite(loss)


def test_returned_tensors_in_order_each_once():
    a, b = torch.ones(2), torch.zeros(3)
    ids = torch.arange(3)
    assert [t.shape for t in returned_tensors({"x": a, "y": (b, a, ids)})] == \
        [a.shape, b.shape]
