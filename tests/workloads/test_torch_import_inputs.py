"""Models with several inputs (forward(x, t), forward(image, text), forward(src, tgt),
forward(input_ids, attention_mask)): one input op per argument, each with the batch first;
policies that split the batch split every input; pipelines ship an input to the stage that
reads it; the command line takes one shape per input."""
import pytest

torch = pytest.importorskip("torch")

from torch.utils.flop_counter import FlopCounterMode  # noqa: E402

from tests.workloads import torch_multi_input_models as mm  # noqa: E402
from tests.workloads.torch_user_models_recent import DiffusionUNet  # noqa: E402
from validation.calibrate.torch_exec import GraphModule, example_inputs, graph_step  # noqa: E402
from workloads import from_torch  # noqa: E402
from workloads.graph import WorkloadError  # noqa: E402
from workloads.torch_file import _parse_tokens, parse_input_shapes  # noqa: E402
from workloads.training import lower_training, training_memory  # noqa: E402


def _cases():
    return {
        "diffusion-unet": (DiffusionUNet, (torch.randn(2, 3, 16, 16), torch.arange(2) * 100.0)),
        "conditioned": (mm.Conditioned, (torch.randn(4, 3, 16, 16), torch.randn(4, 8))),
        "two-tower": (mm.TwoTower, (torch.randn(4, 3, 16, 16), torch.randint(0, 100, (4, 12)))),
        "seq2seq": (mm.Seq2Seq, (torch.randint(0, 120, (4, 10)), torch.randint(0, 120, (4, 7)))),
        "masked-encoder": (mm.MaskedEncoder, (torch.randint(0, 100, (4, 10)), torch.ones(4, 10))),
    }


NAMES = {"diffusion-unet": ["input", "t"], "conditioned": ["input", "cond"],
         "two-tower": ["input", "text"], "seq2seq": ["input", "tgt"],
         "masked-encoder": ["input", "attention_mask"]}


def _imported(name):
    make, xs = _cases()[name]
    torch.manual_seed(0)
    model = make().eval()
    return model, xs, from_torch(model, xs)


@pytest.mark.parametrize("name", sorted(NAMES))
def test_one_input_op_per_argument_with_pytorchs_flops_and_parameters(name):
    model, xs, g = _imported(name)
    inputs = [op for op in g if op.kind == "input"]
    assert [op.name for op in inputs] == NAMES[name]
    assert [op.out.shape for op in inputs] == [tuple(x.shape) for x in xs]
    assert [op.out.integer for op in inputs] == [not x.is_floating_point() for x in xs]
    assert g.params() == sum(p.numel() for p in model.parameters())
    with FlopCounterMode(display=False) as counter:
        model(*xs)
    assert 2 * g.macs() == pytest.approx(counter.get_total_flops(), rel=0.02)
    # PyTorch runs the graph on one tensor per input, in forward's order
    out = GraphModule(g).eval()(*example_inputs(g))
    assert tuple(out.shape) == tuple(model(*xs).shape)
    train = lower_training(g)
    # no input gets a gradient, and each is held for the step
    assert not any(op.phase == "backward" and op.forward in NAMES[name] for op in train)
    held = training_memory(train).activations_bytes
    assert held >= sum(op.out.nbytes for op in inputs)


def test_a_measured_step_takes_every_input():
    _, _, g = _imported("conditioned")
    assert torch.isfinite(graph_step(g)())


def test_one_input_as_a_tuple_is_the_single_input_graph():
    torch.manual_seed(0)
    model, x = DiffusionUNet().eval(), torch.randn(2, 3, 16, 16)
    alone = from_torch(mm.Conditioned().body, x)
    as_list = from_torch(mm.Conditioned().body, [x])
    assert [(op.name, op.kind, op.out.shape) for op in alone] == \
        [(op.name, op.kind, op.out.shape) for op in as_list]
    with pytest.raises(WorkloadError, match=r"forward takes 2 inputs \(x, t\) and one "
                                            "example was given"):
        from_torch(model, x)


@pytest.mark.parametrize("examples,message", [
    (lambda: (torch.randn(2, 3, 16, 16), torch.randn(3)),
     r"example input 2 of 2 has shape \(3,\); its first dimension must be the batch, 2"),
    (lambda: (torch.randn(2, 3, 16, 16), 5), r"example input 2 of 2 is a int, not a tensor"),
    (lambda: (torch.randn(2, 3, 16, 16), torch.randn(2), torch.randn(2)),
     r"takes 2 positional inputs, not the 3 examples given"),
    (lambda: (), "got an empty tuple"),
])
def test_bad_examples_are_named(examples, message):
    with pytest.raises(WorkloadError, match=message):
        from_torch(DiffusionUNet().eval(), examples())


@pytest.mark.parametrize("name", ["diffusion-unet", "seq2seq"])
def test_every_training_policy_runs_a_model_of_several_inputs(name):
    from tests.workloads.test_torch_import_recent_models import every_training_policy
    times = every_training_policy(_imported(name)[2])
    assert all(t > 0 for t in times.values())
    assert times["pipedream"] < times["sequential"]


def test_micro_batches_split_every_input():
    from simulator.policies._pipeline import rebatch
    _, _, g = _imported("diffusion-unet")
    half = rebatch(g, 1)
    assert [op.out.shape for op in half if op.kind == "input"] == [(1, 3, 16, 16), (1,)]
    half.validate()


def test_a_pipeline_ships_an_input_to_the_stage_that_reads_it():
    from simulator import Cluster, policies
    _, _, g = _imported("conditioned")
    cluster = Cluster.build("v100", 2, "nvlink2")
    pol = policies.get("pipedream")
    planned = pol.plan(g, cluster, True, **pol.resolve({"registers": "3"}))
    tasks = getattr(planned, "tasks", planned)
    names = [t.name for t in tasks._tasks]
    # the condition, read only by the head on the second stage, crosses to it each step
    assert any("/xfer/cond->p1" in n for n in names)
    assert not any("/xfer/input->p1" in n for n in names)


@pytest.mark.parametrize("value,shapes", [
    ("3x16x16+scalar", [(3, 16, 16), ()]), ("3x16x16+8", [(3, 16, 16), (8,)]),
    ("128+128", [(128,), (128,)]), ([[3, 8, 8], []], [(3, 8, 8), ()]),
    ("3x32x32", [(3, 32, 32)]), ([3, 32, 32], [(3, 32, 32)])])
def test_input_shapes_of_several_inputs(value, shapes):
    assert parse_input_shapes("n", value) == shapes


@pytest.mark.parametrize("value,message", [
    ("3x16x16+sc", "input 2 of 2 is 'sc'"), ("3x16x16+", "input 2 of 2 is ''"),
    ("scalar+8", "input 1 of 2 is 'scalar'"), ("3x8x8+0", "input 2 of 2 is '0'")])
def test_bad_input_shapes_of_several_inputs(value, message):
    with pytest.raises(WorkloadError, match=f"input_shape.*{message}.*joined by '\\+'"):
        parse_input_shapes("n", value)


def test_tokens_per_input():
    assert _parse_tokens("n", None, 2) == [None, None]
    assert _parse_tokens("n", 100, 2) == [100, None]
    assert _parse_tokens("n", "0+49408", 2) == [None, 49408]
    assert _parse_tokens("n", [120, 120], 2) == [120, 120]
    with pytest.raises(WorkloadError, match="gives 3 values for 2 inputs"):
        _parse_tokens("n", "1+2+3", 2)
    with pytest.raises(WorkloadError, match="0 for an input of values"):
        _parse_tokens("n", "x+2", 2)


def test_the_cli_simulates_a_model_of_several_inputs(tmp_path, capsys):
    import json

    from simulator.cli import main
    path = tmp_path / "unet.py"
    path.write_text("from tests.workloads.torch_user_models_recent import DiffusionUNet\n"
                    "from tests.workloads.torch_multi_input_models import Seq2Seq\n")
    argv = ["simulate", "--workload", f"{path}:DiffusionUNet", "--batch", "4", "--hardware",
            "v100", "--json", "--workload-option"]
    assert main([*argv, "input_shape=3x16x16+scalar"]) == 0
    assert json.loads(capsys.readouterr().out)["iteration_time_s"] > 0
    assert main([*argv, "input_shape=3x16x16+bad"]) == 2
    assert "input 2 of 2 is 'bad'" in capsys.readouterr().err
    assert main([*argv, "input_shape=3x16x16"]) == 2
    assert "forward takes 2 inputs (x, t)" in capsys.readouterr().err
    seq2seq = ["simulate", "--workload", f"{path}:Seq2Seq", "--batch", "4", "--hardware",
               "v100", "--json", "--workload-option", "input_shape=10+7",
               "--workload-option", "tokens=120+120"]
    assert main(seq2seq) == 0
    assert json.loads(capsys.readouterr().out)["iteration_time_s"] > 0
