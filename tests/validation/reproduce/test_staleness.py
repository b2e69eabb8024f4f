"""validation.reproduce.pipeline_stale.staleness: exact delays from the simulator, exact stale
gradients, CSVs."""
import pytest
import torch

from validation.reproduce.pipeline_stale import staleness as S


def test_delays_come_from_the_simulated_schedule():
    s = S.schedule("lenet", [1, 3])
    assert s["delays"] == [4, 2, 0] and s["drifts"] == [4, 2, 0]
    assert s["period_s"] < s["sequential_s"]


def test_split_layer_matches_autograd_when_versions_are_live():
    torch.manual_seed(0)
    conv_cls, lin_cls = S.split_layers()
    for layer, x in ((conv_cls(2, 3, 3, padding=1), torch.randn(4, 2, 5, 5)),
                     (lin_cls(6, 3), torch.randn(4, 6))):
        layer.versions = None
        layer(x).square().sum().backward()
        ref = layer.weight.grad.clone()
        layer.weight.grad = None
        xs = x.clone().requires_grad_(True)
        w = layer.weight.detach().clone()
        layer.versions = (w, layer.bias.detach().clone(), w)
        layer(xs).square().sum().backward()
        assert torch.allclose(layer.weight.grad, ref, atol=1e-5)


def test_stale_forward_uses_old_weights_and_backward_the_given_ones():
    _, lin_cls = S.split_layers()
    layer = lin_cls(2, 1, bias=True)
    old = torch.ones(1, 2)
    new = 2 * torch.ones(1, 2)
    layer.versions = (old, torch.zeros(1), new)
    x = torch.tensor([[1.0, 3.0]], requires_grad=True)
    y = layer(x)
    assert float(y.detach()) == pytest.approx(4.0)   # old weights in the forward
    y.sum().backward()
    assert x.grad.tolist() == [[2.0, 2.0]]            # new weights for the input gradient
    assert layer.weight.grad.tolist() == [[1.0, 3.0]]  # gradient from the stale activations


def test_training_is_deterministic_and_staleness_changes_it():
    a = S.train("lenet", [], [0], [0], 0.0, seed=0, epochs=1)
    b = S.train("lenet", [], [0], [0], 0.0, seed=0, epochs=1)
    c = S.train("lenet", [4], [2, 0], [2, 0], 1.0, seed=0, epochs=1)
    assert a == b and a != c


def test_fraction_outside_unit_interval_is_an_error():
    with pytest.raises(ValueError, match="pipelined_fraction"):
        S.train("lenet", [1], [2, 0], [2, 0], 1.2, seed=0, epochs=1)


@pytest.mark.parametrize("net", ["lenet", "resnet"])
def test_committed_results(net):
    rows = S.load(net)
    assert {r["mode"] for r in rows} == set(S.MODES)
    assert {int(r["seed"]) for r in rows} == set(S.SEEDS)
    curves = S.mean_curves(rows)
    final = {m: acc[-1] for m, (_, acc) in curves.items()}
    assert final["non-pipelined"] > 0.9
    # staleness in more layers costs accuracy; the hybrid recovers most of it
    assert final["pipelined-deep"] < final["non-pipelined"]
    assert final["hybrid"] > final["pipelined-deep"]


def test_time_to_accuracy_uses_the_simulated_schedules():
    tta = S.time_to_accuracy("resnet")
    its = S.mean_curves(S.load("resnet"))["non-pipelined"][0]
    for secs, _ in tta.values():
        assert secs == sorted(secs) and len(secs) == len(its)
    assert tta["pipelined-deep"][0][-1] < tta["non-pipelined"][0][-1]
