"""validation.validate.transformer_steps: measured against simulated transformer training
steps, on tiny GPT-2 and ViT configurations."""
import io

import pytest

torch = pytest.importorskip("torch")

from hwmodels.profile import Profile  # noqa: E402
from simulator.cli import main as cli  # noqa: E402
from validation.paths import MEASURED  # noqa: E402
from validation.validate import transformer_steps as ts  # noqa: E402
from workloads.graph import WorkloadError  # noqa: E402

PROFILE = MEASURED / "cpu_profile.toml"
TINY_GPT = dict(width=32, depth=1, heads=2, vocab_size=64, max_positions=32)
TINY_VIT = dict(image_size=32, patch_size=8, num_layers=1, num_heads=2, hidden_dim=32,
                mlp_dim=64, num_classes=10)


def tiny_cases():
    cases = [ts.gpt2_case(2, 16, name="gpt_tiny", **TINY_GPT)]
    try:
        ts.torchvision_models()
    except WorkloadError:        # no torchvision: the GPT-2 case alone
        return cases
    return [*cases, ts.vit_case(2, name="vit_tiny", **TINY_VIT)]


def test_the_gpt2_module_is_the_zoo_graph_it_is_simulated_as():
    """Same parameters (the tied output layer counted once) and the same forward FLOPs."""
    from torch.utils.flop_counter import FlopCounterMode
    module, ids, loss, graph = ts.gpt2_case(2, 16, **TINY_GPT).build()
    assert sum(p.numel() for p in module.parameters()) == graph.params()
    with FlopCounterMode(display=False) as counted:
        logits = module(ids)
    assert tuple(logits.shape) == graph.topo()[-1].out.shape
    assert counted.get_total_flops() == 2 * graph.macs()
    assert loss(logits).dim() == 0


def test_the_gpt2_module_starts_as_gpt2_is_initialised_the_same_for_a_seed():
    """Weights of std 0.02 (residual projections 0.02 / sqrt(2 * depth)), zero biases: the
    logits start flat instead of one-hot (PyTorch's std-1 embedding)."""
    sizes = dict(width=64, depth=2, heads=2, vocab_size=4096, max_positions=64)
    a, b = ts.gpt2_module(**sizes), ts.gpt2_module(**sizes)
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters(), strict=True))
    assert not torch.equal(a.wte.weight, ts.gpt2_module(**sizes, seed=1).wte.weight)
    assert a.wte.weight.std().item() == pytest.approx(0.02, rel=0.05)
    assert a.h[0].c_proj.weight.std().item() == pytest.approx(0.02 / 2, rel=0.05)
    assert a.h[0].attn.c_proj.weight.std().item() == pytest.approx(0.02 / 2, rel=0.1)
    assert a.wpe.std().item() == pytest.approx(0.01, rel=0.05)
    assert all(not p.any() for n, p in a.named_parameters() if n.endswith("bias"))
    with torch.no_grad():
        logits = a(torch.randint(0, 4096, (2, 16), generator=torch.Generator().manual_seed(0)))
    assert logits.std().item() < 1.0


def test_a_step_slowed_by_subnormal_floats_is_named_in_a_warning():
    """A module that scales its input into the subnormal range: its products read subnormal
    floats, flushing them speeds the step up, and the warning quotes the profile's probe."""
    from validation.calibrate.subnormals import subnormal_slowdown
    if subnormal_slowdown(rounds=3) < 3:
        pytest.skip("this CPU computes subnormal floats at near full speed")
    tiny_case = ts.gpt2_case(2, 16, name="gpt_tiny", **TINY_GPT)

    def build():
        _, _, _, graph = tiny_case.build()
        module = torch.nn.Linear(512, 512)
        x = torch.full((256, 512), 2.0 ** -130)
        return module, x, lambda out: out.sum(), graph
    prof = Profile.load(PROFILE)
    prof.meta["subnormal_slowdown"] = 123.0
    out, err = io.StringIO(), io.StringIO()
    threads = torch.get_num_threads()
    try:
        rows = ts.run(prof, threads=1, cases=[ts.Case("scaled", 2, build)], reps=1, out=out,
                      err=err)
    finally:
        torch.set_num_threads(threads)
    assert [r.name for r in rows] == ["scaled"]
    assert "warning: scaled: the step's ops read subnormal floats (aten." in err.getvalue()
    assert "faster with them flushed to zero" in err.getvalue()
    assert "123x slower" in err.getvalue()


def test_tiny_steps_are_measured_simulated_and_tabled_with_a_machine_warning():
    prof = Profile.load(PROFILE)
    prof.meta["processor"] = "Some Other Processor"
    out, err = io.StringIO(), io.StringIO()
    threads = torch.get_num_threads()
    try:
        rows = ts.run(prof, threads=1, cases=tiny_cases(), reps=1, out=out, err=err)
    finally:
        torch.set_num_threads(threads)
    assert [r.name for r in rows] == [c.name for c in tiny_cases()]
    assert rows[0].name == "gpt_tiny_s16"
    for r in rows:
        assert r.training and r.measured_s > 0 and r.simulated_s > 0
        # kinds the profile never measured are costed by their family, and the table says so
        assert not set(r.fallbacks) & set(prof.kinds)
        assert ("(fallback:" in out.getvalue()) == bool(r.fallbacks)
    assert "warning:" in err.getvalue() and "Some Other Processor" in err.getvalue()
    assert "subnormal" not in err.getvalue()
    assert "MAPE" in out.getvalue() and "gpt_tiny_s16" in out.getvalue()
    # the machine's speed is checked before and after the measuring
    lines = out.getvalue().splitlines()
    assert lines[0].startswith("machine speed check") and lines[-1].startswith("machine speed")


def test_bad_input_exits_2_naming_it(tmp_path, capsys):
    assert cli(["validate", "--transformers", "--profile", str(PROFILE), "--workloads",
                "resnet20"]) == 2
    assert "--transformers and --torchvision each measure their own cases" in \
        capsys.readouterr().err
    assert cli(["validate", "--transformers", "--torchvision", "--profile", str(PROFILE)]) == 2
    assert "or the other" in capsys.readouterr().err
    assert cli(["validate", "--transformers", "--profile", str(PROFILE), "--device",
                "cuda"]) == 2
    assert "--device" in capsys.readouterr().err
    assert ts.main(["--profile", str(tmp_path / "missing.toml")]) == 2
    assert "missing.toml" in capsys.readouterr().err
    assert ts.main(["--profile", str(PROFILE), "--reps", "0"]) == 2
    assert "--reps must be >= 1" in capsys.readouterr().err


def test_dnnsim_validate_transformers_writes_its_table(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(ts, "default_cases", lambda: tiny_cases()[:1])
    threads = torch.get_num_threads()
    try:
        assert cli(["validate", "--transformers", "--profile", str(PROFILE), "--threads", "1",
                    "--csv", str(tmp_path / "t.csv")]) in (0, None)
    finally:
        torch.set_num_threads(threads)
    assert "gpt_tiny_s16" in capsys.readouterr().out
    assert (tmp_path / "t.csv").read_text().splitlines()[1].startswith("gpt_tiny_s16,2,train,")


def test_torchvision_cases_cover_families_no_calibration_defines():
    names = [c.name for c in ts.torchvision_cases()]
    assert len(names) == len(set(names)) >= 12
    assert {"mobilenet_v2", "densenet121", "convnext_tiny", "regnet_y_400mf"} <= set(names)
