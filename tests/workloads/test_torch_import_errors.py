"""from_torch on models it cannot import: every unsupported op at once, with module paths,
naming what is supported; PyTorch's own message where the model does not run; exit 2 from the
CLI, the user's file untouched."""
import pytest

torch = pytest.importorskip("torch")
nn = torch.nn
F = torch.nn.functional

from simulator.cli import main  # noqa: E402
from workloads import from_torch  # noqa: E402
from workloads.graph import WorkloadError  # noqa: E402


class Block(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(8, 8, 3, padding=1)
        self.shuffle = nn.PixelShuffle(1)

    def forward(self, x):
        return torch.lgamma(self.shuffle(self.conv(x))) + x


class ManyUnsupported(nn.Module):
    """Three kinds of op nobody lowers, in four places, around ops that are fine."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 3, padding=1)
        self.blocks = nn.Sequential(Block(), Block())
        self.rnn = nn.LSTM(64, 8)
        self.head = nn.Linear(8, 10)

    def forward(self, x):
        x = self.blocks(F.relu(self.stem(x)))
        seq, _ = self.rnn(x.flatten(2))
        return self.head(seq[-1])


def test_every_unsupported_op_is_reported_at_once_with_its_module_paths():
    with pytest.raises(WorkloadError) as err:
        from_torch(ManyUnsupported(), torch.randn(2, 3, 8, 8))
    message = str(err.value)
    assert message.startswith("ManyUnsupported: ")
    for line in ["torch.nn.PixelShuffle at module paths 'blocks.0.shuffle', 'blocks.1.shuffle'",
                 "torch.lgamma at module paths 'blocks.0', 'blocks.1'",
                 "torch.nn.LSTM at module path 'rnn'"]:
        assert line in message, line
    # what is supported is named
    assert "Supported modules: " in message and "Conv2d" in message and "Linear" in message
    assert "Supported functions: " in message and "Supported Tensor methods: " in message
    # an op on a refused op's output is listed where it refuses what it is asked (seq[-1]
    # indexes the batch dimension), not where it works on a tensor of that shape (the head)
    assert "getitem at module path '<top>': indexes with (-1,)" in message
    assert "torch.nn.Linear at" not in message


def test_a_shape_mismatch_gives_pytorchs_message_and_the_module_path():
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.features = nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU())
            self.classifier = nn.Sequential(nn.Flatten(), nn.Linear(100, 10))

        def forward(self, x):
            return self.classifier(self.features(x))
    with pytest.raises(WorkloadError) as err:
        from_torch(Net(), torch.randn(2, 3, 8, 8))
    message = str(err.value)
    assert "Net does not run on an input of shape (2, 3, 8, 8)" in message
    assert "module path 'classifier.1' (torch.nn.Linear" in message
    with pytest.raises(RuntimeError) as torch_err:
        Net()(torch.randn(2, 3, 8, 8))
    assert str(torch_err.value) in message


NET = '''
import torch
from torch import nn


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)
        self.up = nn.PixelShuffle(2)
        self.fold = nn.Fold(4, 2)

    def forward(self, x):
        return torch.lgamma(self.up(self.conv(x)))


def make():
    return Net()
'''


class GeneratorOverSplit(nn.Module):
    """Heads made by a generator over the pieces of split: plain torch.fx cannot iterate a
    traced tensor; the import traces it again with the example's values."""

    def __init__(self):
        super().__init__()
        self.c_attn = nn.Linear(32, 96)

    def forward(self, x):
        n, s = x.shape[0], x.shape[1]
        q, k, v = (t.view(n, s, 4, 8) for t in self.c_attn(x).split(32, dim=2))
        return (q + k + v).flatten(2)


class Unpacked(GeneratorOverSplit):
    def forward(self, x):
        n, s = x.shape[0], x.shape[1]
        q, k, v = self.c_attn(x).split(32, dim=2)
        return (q.view(n, s, 4, 8) + k.view(n, s, 4, 8) + v.view(n, s, 4, 8)).flatten(2)


class DataDependent(nn.Module):
    """A branch on the values of a tensor computed from the input."""

    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(32, 32)

    def forward(self, x):
        y = self.fc(x)
        if y.sum() > 0:
            return y.relu()
        return y


class Decoder(nn.Module):
    def __init__(self, block):
        super().__init__()
        self.h = nn.ModuleList([block])

    def forward(self, x):
        return self.h[0](x)


def test_a_generator_over_split_imports_as_the_unpacked_pieces():
    x = torch.randn(2, 16, 32)
    looped, unpacked = from_torch(GeneratorOverSplit(), x), from_torch(Unpacked(), x)
    assert sorted((op.kind, op.out.shape) for op in looped) == \
        sorted((op.kind, op.out.shape) for op in unpacked)
    assert looped.topo()[-1].out.shape == (2, 16, 32)


def test_data_dependent_control_flow_is_refused_with_the_models_line():
    with pytest.raises(WorkloadError) as err:
        from_torch(Decoder(DataDependent()), torch.randn(2, 16, 32))
    message = str(err.value)
    assert "torch.fx cannot trace Decoder at module path 'h.0'" in message
    assert "if y.sum() > 0:" in message   # the model's own line
    assert "depend on the input (data-dependent control flow)" in message


def test_a_size_made_of_the_inputs_values_is_refused_as_data_dependent():
    class Routed(DataDependent):
        def forward(self, x):
            y = self.fc(x)
            for _ in range(y.argmax(-1).max()):   # as many steps as the input says
                y = y.relu()
            return y
    with pytest.raises(WorkloadError, match=r"an index or a size made of the values of .* "
                                            r"\(data-dependent control flow\)"):
        from_torch(Routed(), torch.randn(2, 16, 32))


def test_control_flow_on_parameters_alone_traces():
    """A branch on parameters, buffers or constants is the same for every input."""
    class OnWeights(DataDependent):
        def forward(self, x):
            return self.fc(x).relu() if self.fc.weight.abs().sum() > 0 else self.fc(x)

    g = from_torch(OnWeights(), torch.randn(2, 16, 32))
    assert [op.kind for op in g.topo()][-1] == "relu"


GENERATOR_NET = '''
from torch import nn


class Heads(nn.Module):
    def __init__(self):
        super().__init__()
        self.c_attn = nn.Linear(32, 96)

    def forward(self, x):
        y = self.c_attn(x)
        return y.relu() if y.mean() > 0 else y


def make():
    return Heads()
'''


@pytest.mark.parametrize("source, input_shape, expected", [
    (NET, "3x8x8", ["torch.nn.PixelShuffle at module path 'up'",
                    "torch.lgamma at module path '<top>'", "Supported modules:"]),
    (GENERATOR_NET, "16x32", ["torch.fx cannot trace Heads at module path '<top>', net.py line",
                              "data-dependent control flow"]),
])
def test_the_cli_exits_2_naming_what_is_wrong_and_leaves_the_file(tmp_path, capsys, source,
                                                                  input_shape, expected):
    """Every unsupported op at once; a model torch.fx cannot trace, with the reason."""
    path = tmp_path / "net.py"
    path.write_text(source)
    assert main(["simulate", "--workload", f"{path}:make", "--workload-option",
                 f"input_shape={input_shape}", "--batch", "2", "--hardware", "v100"]) == 2
    err = capsys.readouterr().err
    assert all(line in err for line in expected), err
    assert "Traceback" not in err
    assert path.read_text() == source
