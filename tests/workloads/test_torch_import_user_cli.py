"""`dnnsim simulate` on a file of the user's own models: a GPT and a U-Net written as users
write them (tests/workloads/torch_user_models.py) run under several policies, a mixture of
experts costed by the routing asked, and a model with ops out of scope exits 2 listing every
one of them with its module path."""
import pytest

pytest.importorskip("torch")


USER_FILE = '''
import torch
from torch import nn
from tests.workloads.torch_user_llama import rotate_every_two
from tests.workloads.torch_user_models import GPT, UNet


def gpt():
    return GPT(last_only=False)


def unet():
    return UNet()


class LeakyByHand(nn.Module):
    def forward(self, y):
        return torch.where(y > 0, y, 0.1 * y)


class Unsupported(nn.Module):
    """A bilinear layer, a condition computed from the input, a tensor exponent."""

    def __init__(self):
        super().__init__()
        self.mix, self.act, self.head = nn.Bilinear(8, 8, 16), LeakyByHand(), \
            nn.Linear(16, 4)

    def forward(self, x):
        y = self.mix(x, x)
        y = self.act(y)
        return self.head(y.pow(y)[:, -1])


def unsupported():
    return Unsupported()


def moe():
    from tests.workloads.torch_user_code import MoEModel
    return MoEModel()
'''


@pytest.fixture
def user_file(tmp_path):
    path = tmp_path / "user_net.py"
    path.write_text(USER_FILE)
    return path


@pytest.mark.parametrize("policy", ["sequential", "gpipe", "swap-all"])
def test_the_cli_simulates_a_users_gpt_and_unet(user_file, policy, capsys):
    import json

    from simulator.cli import main
    gpipe = ["-o", "micro_batches=2"] if policy == "gpipe" else []
    for factory, options in (("gpt", ["input_shape=16", "tokens=256"]),
                             ("unet", ["input_shape=3x32x32"])):
        assert main(["simulate", "--workload", f"{user_file}:{factory}", "--batch", "2",
                     "--hardware", "v100", "--devices", "1" if policy == "sequential" else "2",
                     "--link", "nvlink2", "--policy", policy, *gpipe, "--json",
                     *(a for o in options for a in ("--workload-option", o))]) == 0
        assert json.loads(capsys.readouterr().out)["iteration_time_s"] > 0


def test_what_stays_out_is_listed_at_once_with_module_paths(user_file, capsys):
    from simulator.cli import main
    code = main(["simulate", "--workload", f"{user_file}:unsupported", "--batch", "2",
                 "--workload-option", "input_shape=16x8", "--hardware", "v100"])
    message = " ".join(capsys.readouterr().err.split())
    assert code == 2
    for line in ("4 unsupported ops", "torch.nn.Bilinear at module path 'mix'",
                 "_operator.gt at module path 'act'",
                 "torch.where at module path 'act': selects by a condition computed from the "
                 "input", "raises to a tensor power", "Supported modules:"):
        assert line in message, line


def test_the_cli_costs_a_mixture_of_experts_by_the_routing_asked(user_file, capsys):
    """--workload-option moe_routing=dense runs every expert on every token: a longer step
    than the expected load's (the default); a routing that does not exist exits 2."""
    import json

    from simulator.cli import main
    times = {}
    for routing in ("expected", "dense"):
        assert main(["simulate", "--workload", f"{user_file}:moe", "--batch", "8",
                     "--workload-option", "input_shape=64x32", "--workload-option",
                     f"moe_routing={routing}", "--hardware", "skylake-x-6c", "--json"]) == 0
        times[routing] = json.loads(capsys.readouterr().out)["iteration_time_s"]
    assert times["expected"] < times["dense"]
    assert main(["simulate", "--workload", f"{user_file}:moe", "--batch", "2",
                 "--workload-option", "input_shape=64x32", "--workload-option",
                 "moe_routing=sparse", "--hardware", "v100"]) == 2
    assert "moe_routing 'sparse' is not one of expected, dense" in capsys.readouterr().err
