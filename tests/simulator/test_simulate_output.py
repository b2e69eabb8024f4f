"""`dnnsim simulate` and the published-data commands refuse bad values (the printed figures
are tested in test_report.py), and the first line says which precision ran."""
import pytest


def test_bad_precisions_exit_2_naming_what_is_wrong(capsys):
    from simulator.cli import main
    base = ["simulate", "--workload", "lenet5", "--batch", "2", "--hardware", "v100"]
    assert main(base + ["--precision", "fp8"]) == 2
    assert "precision must be one of fp32" in capsys.readouterr().err
    assert main(base + ["--precision", "bf16"]) == 2
    assert "cannot train in bf16; it can in: fp32, fp16, amp-fp16" in capsys.readouterr().err


@pytest.mark.parametrize("hardware, precision, runs", [
    ("v100", "amp-bf16", "fp32, fp16, amp-fp16"),      # Volta: no BF16 units
    ("t4", "tf32", "fp32, fp16, amp-fp16"),            # Turing: no TF32
    ("rtx2080ti", "bf16", "fp32, fp16, amp-fp16"),
    ("k80", "tf32", "fp32, fp16, amp-fp16"),           # Kepler: FP16 storage, FP32 math
    ("p100", "amp-bf16", "fp32, fp16, amp-fp16"),
])
def test_a_precision_the_part_lacks_exits_2_naming_those_it_runs(capsys, hardware, precision,
                                                                  runs):
    from simulator.cli import main
    assert main(["simulate", "--workload", "lenet5", "--batch", "2", "--hardware", hardware,
                 "--precision", precision]) == 2
    assert f"'{hardware}' cannot train in {precision}; it can in: {runs}" in \
        capsys.readouterr().err


def test_the_optimizer_is_a_setting_whose_state_and_step_a_run_counts(capsys):
    import json

    from simulator.cli import main
    base = ["simulate", "--workload", "resnet18", "--batch", "2", "--hardware", "a100"]
    assert main([*base, "--optimizer", "adamw8bit"]) == 2
    assert "optimizer must be one of sgd, sgd-momentum, adam, adamw, got 'adamw8bit'" in \
        capsys.readouterr().err
    runs = {}
    for optimizer in ("sgd", "sgd-momentum", "adam"):
        assert main([*base, "--optimizer", optimizer]) == 0
        assert capsys.readouterr().out.splitlines()[0].endswith(f"training, {optimizer}")
        assert main([*base, "--optimizer", optimizer, "--json"]) == 0
        runs[optimizer] = json.loads(capsys.readouterr().out)
    peak = {o: max(r["peak_memory_bytes"].values()) for o, r in runs.items()}
    step = {o: r["iteration_time_s"] for o, r in runs.items()}
    assert peak["sgd"] < peak["sgd-momentum"] < peak["adam"]
    assert step["sgd"] < step["sgd-momentum"] < step["adam"]


def test_fsdp_s_optimizer_option_is_the_scenario_s_optimizer(tmp_path, capsys):
    import json

    from simulator.cli import main
    base = ["simulate", "--workload", "resnet18", "--batch", "2", "--hardware", "a100",
            "--devices", "2", "--link", "nvlink3", "--policy", "fsdp", "--json"]
    runs = []
    for flags in (["--optimizer", "adam"], ["-o", "optimizer=adam"],
                  ["--optimizer", "adam", "-o", "optimizer=adam"]):
        assert main([*base, *flags]) == 0
        runs.append(json.loads(capsys.readouterr().out))
    assert runs[0]["peak_memory_bytes"] == runs[1]["peak_memory_bytes"] \
        == runs[2]["peak_memory_bytes"]
    assert runs[0]["options"]["optimizer"] == "adam"
    assert main([*base, "--optimizer", "sgd", "-o", "optimizer=adam"]) == 2
    assert "optimizer 'sgd' and the policy option optimizer 'adam' disagree" in \
        capsys.readouterr().err


def test_published_commands_refuse_bad_files(tmp_path, capsys):
    from simulator.cli import main
    assert main(["validate", "--published", str(tmp_path / "missing.csv")]) == 2
    assert "cannot read" in capsys.readouterr().err
    out = tmp_path / "families.toml"
    out.write_text("mine\n")
    assert main(["calibrate", "--published", str(tmp_path), "--out", str(out)]) == 2
    assert "not overwritten" in capsys.readouterr().err
    assert out.read_text() == "mine\n"


def test_the_first_line_names_a_precision_and_memory_format_that_are_not_the_defaults(capsys):
    from simulator.cli import main
    base = ["simulate", "--workload", "resnet18", "--batch", "2", "--hardware", "a100"]
    assert main(base) == 0
    assert capsys.readouterr().out.splitlines()[0] == "sequential: resnet18, batch 2, training"
    assert main([*base, "--precision", "amp-fp16", "--memory-format", "nhwc"]) == 0
    assert capsys.readouterr().out.splitlines()[0] == \
        "sequential: resnet18, batch 2, training, amp-fp16, nhwc"
    assert main([*base, "--precision", "tf32"]) == 0
    assert capsys.readouterr().out.splitlines()[0] == \
        "sequential: resnet18, batch 2, training, tf32"
