"""calibrate --published on a user's own CSV of training steps: the fit recovers a known
perturbation of the model (rows 25% slower than simulated on every A100), writes a families
file that simulate and validate then use, estimates its error on rows it was not fitted on,
and refuses bad input (no usable row, a GPU not in the catalog, an existing --out) with exit 2
and nothing written."""
from __future__ import annotations

import contextlib
import io
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hwmodels.gpu import builtin_families
from hwmodels.gpu_families_file import load_gpu_families
from simulator.cli import main
from validation.calibrate import published_gpu as pg
from validation.calibrate import published_holdout as ph

HEADER = "network,gpu,framework,precision,batch_per_gpu,seq_len,iter_time_ms\n"
# A100 40 and 80 GB (one architecture), CNNs and transformers, AMP and TF32: each network
# twice, so that a fold of rows held out leaves each kind of kernel in the fit
ROWS = [("resnet50", "A100 80GB", "AMP", 256, ""), ("resnet50", "A100 80GB", "AMP", 128, ""),
        ("resnet50", "A100", "TF32", 128, ""), ("resnet50", "A100", "FP32", 64, ""),
        ("resnet18", "A100 80GB", "AMP", 256, ""), ("resnet18", "A100", "TF32", 128, ""),
        ("resnet101", "A100 80GB", "AMP", 128, ""), ("resnet101", "A100", "TF32", 64, ""),
        ("vgg16", "A100 80GB", "AMP", 128, ""), ("vgg16", "A100", "TF32", 64, ""),
        ("densenet121", "A100 80GB", "AMP", 128, ""), ("densenet121", "A100", "TF32", 64, ""),
        ("bert_base", "A100 80GB", "AMP", 32, "128"), ("bert_base", "A100", "TF32", 16, "128"),
        ("bert_base", "A100 80GB", "AMP", 8, "512"), ("gpt2", "A100 80GB", "AMP", 8, "1024"),
        ("gpt2", "A100", "TF32", 4, "1024"), ("vit_b_16", "A100 80GB", "AMP", 64, ""),
        ("mobilenet_v2", "A100 80GB", "AMP", 256, ""), ("mobilenet_v2", "A100", "TF32", 128, "")]
SLOWER = 1.25     # the "measured" steps take 1.25x the simulated time: 0.8x its throughput


def _table(tmp_path, rows=ROWS, scale: float = SLOWER) -> str:
    """`rows` with step times of the shipped model times `scale`."""
    draft = tmp_path / "draft.csv"
    draft.write_text(HEADER + "".join(f"{n},{g},PyTorch,{p},{b},{s},100\n"
                                      for n, g, p, b, s in rows))
    table = pg.read_network_rows(str(draft))
    assert not table.skipped and len(table.rows) == len(rows)
    path = tmp_path / "mine.csv"
    path.write_text(HEADER + "".join(
        f"{n},{g},PyTorch,{p},{b},{s},{b / pg.simulate_row(r) * 1e3 * scale:.4f}\n"
        for (n, g, p, b, s), r in zip(rows, table.rows, strict=True)))
    return str(path)


@pytest.fixture(scope="module")
def fitted(tmp_path_factory):
    """The fit to the perturbed rows alone: exit code, families file, table, printout."""
    tmp = tmp_path_factory.mktemp("fit")
    csv = _table(tmp)
    out = tmp / "mine.toml"
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        code = main(["calibrate", "--published", csv, "--alone", "--held-out", "folds",
                     "--no-progress", "--out", str(out)])
    return code, out, csv, printed.getvalue()


def test_the_fit_moves_the_architecture_of_the_rows(fitted):
    code, out, _, _ = fitted
    assert code == 0 and out.exists()
    ampere, shipped = load_gpu_families(out)[0]["ampere"], builtin_families()["ampere"]
    # the rows are slower than the shipped constants say: the efficiencies they are bound by
    # move down (which of them, and how far each, twenty rows of whole steps do not tell
    # apart: the framework's streaming share takes some of it)
    ratios = [getattr(ampere, k) / getattr(shipped, k)
              for k in ("gemm", "conv_fwd", "conv_dgrad", "conv_wgrad", "memory")]
    assert min(ratios) < 0.9
    assert "20 training-throughput rows of a100, a100-80gb" in ampere.fitted_to


def test_the_fit_recovers_a_uniform_slowdown_on_rows_it_did_not_see(fitted):
    text = fitted[3]
    assert "ampere (20 of your rows, on a100, a100-80gb): " in text
    assert re.search(r"conv_fwd [01]\.\d+ -> 0\.\d+", text)
    assert "not determined by your rows: winograd, winograd_fused, fft" in text
    shipped = re.search(r"shipped constants MAPE ([\d.]+)%", text)
    assert shipped and float(shipped.group(1)) == pytest.approx(25.0, abs=0.1)
    held = re.search(r"^all\s+20\s+([\d.]+)%\s+([\d.]+)%\s+([\d.]+)%$", text, re.M)
    assert held, text
    # each fold predicted from constants fitted without it: within a few % of the "measured"
    # rows, against 25% off with the shipped constants
    assert float(held.group(1)) == pytest.approx(25.0, abs=0.1)
    assert float(held.group(2)) < 8.0 and float(held.group(3)) < 20.0


def test_simulate_and_validate_use_the_families_file(fitted, tmp_path, capsys):
    _, out, csv, _ = fitted
    row = pg.read_network_rows(csv).rows[1]          # resnet50, AMP, batch 128, A100 80 GB
    expected_ms = row.batch / pg.simulate_row(row, *load_gpu_families(out)) * 1e3
    scenario = tmp_path / "run.toml"
    (tmp_path / "constants").mkdir()
    (tmp_path / "constants" / "mine.toml").write_bytes(out.read_bytes())
    scenario.write_text('workload = "resnet50"\nbatch = 128\nhardware = "a100-80gb"\n'
                        'policy = "sequential"\nprecision = "amp-fp16"\n'
                        'gpu_families = "constants/mine.toml"\n')   # from the file's folder
    capsys.readouterr()
    assert main(["simulate", str(scenario)]) == 0
    iteration = re.search(r"iteration time\s+([\d.]+) ms", capsys.readouterr().out)
    assert iteration and float(iteration.group(1)) == pytest.approx(expected_ms, rel=2e-3)
    assert main(["validate", "--published", csv, "--gpu-families", str(out)]) == 0
    text = capsys.readouterr().out
    assert f"constants of {out}" in text


@pytest.mark.parametrize("hardware, families, message", [
    ("xeon-avx512-2c", "mine", "holds GPU constants; hardware 'xeon-avx512-2c' is a cpu"),
    ("a100", "missing", "No such file"),
    ("a100", "csv", "not valid TOML"),
])
def test_simulate_refuses_a_families_file_it_cannot_use(fitted, tmp_path, capsys, hardware,
                                                        families, message):
    _, out, csv, _ = fitted
    path = {"mine": str(out), "missing": str(tmp_path / "none.toml"), "csv": csv}[families]
    assert main(["simulate", "--workload", "resnet18", "--batch", "8", "--hardware", hardware,
                 "--gpu-families", path]) == 2
    err = capsys.readouterr().err
    assert message in err and "gpu_families" in err and err.count("\n") == 1


def _refused(tmp_path, capsys, argv: list[str], message: str) -> None:
    out = tmp_path / "families.toml"
    before = sorted(p.name for p in tmp_path.iterdir())
    assert main(["calibrate", *argv, "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1, err
    assert sorted(p.name for p in tmp_path.iterdir()) == before   # nothing written


def test_a_table_without_a_usable_row_is_refused(tmp_path, capsys):
    path = tmp_path / "mine.csv"
    path.write_text(HEADER + "resnet50,TPU v9,PyTorch,AMP,128,,100\n")
    _refused(tmp_path, capsys, ["--published", str(path)],
             "none of its 1 rows can be fitted as training steps; row 2: GPU 'TPU v9' is not "
             "in the catalog")


def test_a_row_that_cannot_be_fitted_is_an_error_unless_skipped(tmp_path, capsys):
    path = tmp_path / "mine.csv"
    path.write_text(HEADER + "resnet18,A100,PyTorch,AMP,128,,60\n"
                             "resnet18,Radeon VII,PyTorch,FP32,128,,100\n")
    _refused(tmp_path, capsys, ["--published", str(path), "--alone"],
             "1 row(s) cannot be fitted (row 3: GPU 'Radeon VII' is not in the catalog")
    out = tmp_path / "families.toml"
    assert main(["calibrate", "--published", str(path), "--alone", "--skip-unusable",
                 "--held-out", "none", "--out", str(out)]) == 0
    assert "not fitted: row 3: GPU 'Radeon VII'" in capsys.readouterr().err
    assert "1 training-throughput rows of a100" in load_gpu_families(out)[0]["ampere"].fitted_to


def test_an_existing_out_is_never_replaced(tmp_path, capsys):
    out = tmp_path / "families.toml"
    out.write_text("mine\n")
    assert main(["calibrate", "--published", _table(tmp_path, ROWS[:1]), "--out",
                 str(out)]) == 2
    assert "exists; not overwritten" in capsys.readouterr().err
    assert out.read_text() == "mine\n"


@pytest.mark.parametrize("argv, message", [
    (["--alone"], "--alone, --held-out, --skip-unusable and --workers go with --published"),
    (["--held-out", "none"], "go with --published"),
    (["--published", "x.csv", "--device", "cuda"], "measures nothing; it takes no --device"),
    (["--published", "nowhere.csv"], "no such file or folder"),
])
def test_flags_that_do_not_go_together_are_named(tmp_path, capsys, argv, message):
    _refused(tmp_path, capsys, argv, message)


@pytest.mark.parametrize("workers", ["0", "-1"])
def test_a_bad_worker_count_is_refused_before_the_fit(tmp_path, capsys, workers):
    out = tmp_path / "families.toml"
    assert main(["calibrate", "--published", _table(tmp_path, ROWS[:1]), "--alone",
                 "--held-out", "none", "--workers", workers, "--out", str(out)]) == 2
    assert "--workers must be a whole number >= 1" in capsys.readouterr().err
    assert not out.exists()


@given(st.lists(st.sampled_from(["resnet18", "resnet50", "bert_base"]), max_size=12),
       st.sampled_from(ph.HOLDOUT_MODES[:2]))
def test_the_folds_hold_out_each_row_once(networks, mode):
    rows = [pg.NetworkRow(f"r{i}", n, "a100", "amp-fp16", 8, 1.0, False, "", "")
            for i, n in enumerate(networks)]
    parts = ph.folds(rows, mode)
    held = [r.row_id for _, fold in parts for r in fold]
    assert sorted(held) == sorted(r.row_id for r in rows) and all(fold for _, fold in parts)
    assert ph.folds(rows, mode) == parts            # the same rows, the same folds
    if mode == "network" and len(set(networks)) > 1:
        assert all(len({r.network for r in fold}) == 1 for _, fold in parts)


def test_by_default_the_shipped_tables_are_fitted_too(tmp_path, capsys):
    """Architectures without rows of yours keep their published fit (the frameworks' shared
    constants move them a little at most); the file names every table it was fitted to."""
    out = tmp_path / "mine.toml"
    assert main(["calibrate", "--published", _table(tmp_path, ROWS[:4]), "--held-out", "none",
                 "--out", str(out)]) == 0
    text = out.read_text()
    assert "mine.csv (4 training-throughput rows)" in text
    assert "the shipped validation/measured/published/kernels.csv" in text
    assert "the shipped validation/measured/published/single_gpu.csv" in text
    volta, shipped = load_gpu_families(out)[0]["volta"], builtin_families()["volta"]
    for name in ("gemm", "conv_fwd", "winograd", "conv_wgrad"):
        assert getattr(volta, name) == pytest.approx(getattr(shipped, name), rel=0.05), name
    assert load_gpu_families(out)[0]["ampere"].conv_fwd < 0.8 * builtin_families()[
        "ampere"].conv_fwd


def test_the_held_out_figures_do_not_depend_on_the_worker_processes(tmp_path):
    rows = pg.read_network_rows(_table(tmp_path, [ROWS[4], ROWS[5], ROWS[0], ROWS[2]])).rows
    serial = ph.predict([], rows, rows, "network", progress=False, workers=1)
    parallel = ph.predict([], rows, rows, "network", progress=False, workers=2)
    assert serial == parallel and [p.fold for p in serial] == ["resnet18"] * 2 + ["resnet50"] * 2
