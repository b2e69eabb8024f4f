"""A PyTorch module in the user's own file as a workload: path/to/net.py:factory."""
import json

import pytest

torch = pytest.importorskip("torch")

from simulator.cli import main  # noqa: E402
from workloads import zoo  # noqa: E402
from workloads.graph import WorkloadError  # noqa: E402
from workloads.torch_file import parse_input_shape  # noqa: E402

NET = '''
import torch
from torch import nn

def make_net():
    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
                         nn.Flatten(), nn.Linear(8, 10))

class Mlp(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(784, 10)

    def forward(self, x):
        return self.fc(x)

def not_a_module():
    return 3
'''


@pytest.fixture
def net_file(tmp_path):
    path = tmp_path / "net.py"
    path.write_text(NET)
    return path


def test_a_function_or_a_class_in_a_file_is_a_workload(net_file):
    g = zoo.get(f"{net_file}:make_net", batch=4, input_shape="3x16x16")
    assert g.batch == 4 and g.input_op.out.shape == (4, 3, 16, 16)
    assert [op.kind for op in g.topo()][1:] == ["conv2d", "relu", "adaptive_avgpool",
                                                "flatten", "linear"]
    mlp = zoo.get(f"{net_file}:Mlp", batch=2, input_shape=784)
    assert mlp.topo()[-1].out.shape == (2, 10)


def test_cli_simulates_it_and_names_what_is_wrong(net_file, capsys):
    spec = f"{net_file}:make_net"
    assert main(["simulate", "--workload", spec, "--workload-option", "input_shape=3,16,16",
                 "--batch", "4", "--hardware", "v100", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["iteration_time_s"] > 0
    for workload, option, message in [
        (spec, [], "give the input of one sample as the workload option input_shape"),
        (f"{net_file.parent}/missing.py:make_net", ["input_shape=3x16x16"], "does not exist"),
        (f"{net_file}:resnet", ["input_shape=3x16x16"],
         "has no function or class 'resnet'; it defines: Mlp, make_net, not_a_module"),
        (f"{net_file}:not_a_module", ["input_shape=3x16x16"], "'int', not a torch.nn.Module"),
        (spec, ["input_shape=3x16x16x2"], "must be C x H x W, C x L or F"),
        (spec, ["input_shape=3x16x16", "tokens=-3"], "tokens -3 must be the vocabulary"),
    ]:
        args = ["simulate", "--workload", workload, "--batch", "2", "--hardware", "v100"]
        assert main(args + [a for o in option for a in ("--workload-option", o)]) == 2
        assert message in capsys.readouterr().err, workload


def test_an_import_error_in_the_file_is_reported(tmp_path):
    bad = tmp_path / "broken.py"
    bad.write_text("import torch\nraise RuntimeError('no GPU here')\n")
    with pytest.raises(WorkloadError, match="importing .*broken.py.* failed: RuntimeError: "
                                            "no GPU here"):
        zoo.get(f"{bad}:make", batch=1, input_shape="3x8x8")


@pytest.mark.parametrize("body, message", [
    ("def make():\n    raise RuntimeError('boom in factory')\n",
     "make() raised RuntimeError: boom in factory"),
    ("class make(torch.nn.Module):\n    def __init__(self, width):\n        super().__init__()\n",
     "make() raised TypeError"),
])
def test_a_factory_that_raises_is_named_with_its_error(tmp_path, capsys, body, message):
    net = tmp_path / "net.py"
    net.write_text("import torch\n" + body)
    with pytest.raises(WorkloadError, match=message.replace("(", r"\(").replace(")", r"\)")):
        zoo.get(f"{net}:make", batch=1, input_shape="3x8x8")
    args = ["simulate", "--workload", f"{net}:make", "--workload-option", "input_shape=3x8x8",
            "--batch", "2", "--hardware", "v100"]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


@pytest.mark.parametrize("value,shape", [("3x32x32", (3, 32, 32)), ("3,8,8", (3, 8, 8)),
                                         (784, (784,)), ([1, 28, 28], (1, 28, 28)),
                                         ([3, 8], (3, 8)), ("8x128", (8, 128))])
def test_input_shapes(value, shape):
    assert parse_input_shape("n", value) == shape


@pytest.mark.parametrize("value", ["3x0x8", "3.5", "axb", [3, 0], 2.5, "1x2x3x4"])
def test_bad_input_shapes(value):
    with pytest.raises(WorkloadError, match="input_shape"):
        parse_input_shape("n", value)


@pytest.mark.parametrize("value", [10 ** 20, 1e300, "99999999999999999999", [2 ** 27] * 2])
def test_an_input_shape_past_2_to_the_53_elements_is_named(value):
    """Refused before torch is asked for it (its TypeError, Overflow when unpacking long, is
    no message of ours)."""
    with pytest.raises(WorkloadError, match="elements a sample, past the most one tensor"):
        parse_input_shape("n", value)


def test_a_batch_too_large_for_a_tensor_is_named_before_torch(net_file):
    with pytest.raises(WorkloadError, match=r"net.py:Mlp at batch 1e\+17 with "
                                            r"input_shape=784: an input of 7.84e\+19"):
        zoo.get(f"{net_file}:Mlp", batch=10 ** 17, input_shape=784)


def test_an_input_this_machine_cannot_allocate_is_named(net_file, monkeypatch):
    """Tracing on the CPU (import_on=cpu, or the meta device's fallback) allocates the batch:
    torch's allocation error is named with the batch, not a RuntimeError traceback."""
    def no_memory(*args, **kwargs):
        raise RuntimeError("DefaultCPUAllocator: can't allocate memory")
    monkeypatch.setattr(torch, "randn", no_memory)
    with pytest.raises(WorkloadError, match="the input at batch 4 cannot be made on the cpu "
                                            "to trace the module .*give a smaller batch"):
        zoo.get(f"{net_file}:Mlp", batch=4, input_shape=784, import_on="cpu")


LM = '''
import torch
from torch import nn


def make():
    layer = nn.TransformerEncoderLayer(32, 4, 64, batch_first=True)
    return nn.Sequential(nn.Embedding(100, 32), nn.TransformerEncoder(layer, 2), nn.Flatten(),
                         nn.Linear(32 * 16, 100))
'''


def test_a_language_model_in_a_file_reads_token_ids(tmp_path, capsys):
    path = tmp_path / "lm.py"
    path.write_text(LM)
    g = zoo.get(f"{path}:make", batch=2, input_shape=16, tokens=100)
    assert g.input_op.out.shape == (2, 16) and g.input_op.attrs["tokens"] == 100
    assert main(["simulate", "--workload", f"{path}:make", "--workload-option",
                 "input_shape=16", "--workload-option", "tokens=100", "--batch", "2",
                 "--hardware", "v100", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["iteration_time_s"] > 0
