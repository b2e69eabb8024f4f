"""`dnnsim validate` refuses what it would otherwise ignore or half-score: flags that do not
apply to --published, a published file of which no row can be simulated, bad cases before
anything is measured."""
from simulator.cli import main
from validation.paths import MEASURED

PUBLISHED = MEASURED / "published" / "single_gpu.csv"


def _rows(tmp_path, replace: tuple[str, str]):
    header, *rows = PUBLISHED.read_text(encoding="utf-8").splitlines()
    row = next(r for r in rows if r.startswith("S003,"))
    path = tmp_path / "rows.csv"
    path.write_text(f"{header}\n{row.replace(*replace)}\n", encoding="utf-8")
    return path


def test_a_published_file_of_which_no_row_can_be_simulated_is_an_error(tmp_path, capsys):
    path = _rows(tmp_path, (",V100,", ",TPUv9,"))
    assert main(["validate", "--published", str(path)]) == 2
    out, err = capsys.readouterr()
    assert "S003: GPU 'TPUv9' is not in the catalog" in out      # the report still lists it
    assert err.startswith("dnnsim: error: ") and len(err.strip().splitlines()) == 1
    assert f"{path}: none of its 1 rows could be simulated" in err and "TPUv9" in err


def test_published_refuses_the_flags_it_would_ignore_and_writes_nothing(tmp_path, capsys):
    path = _rows(tmp_path, ("", ""))
    table = tmp_path / "table.csv"
    table.write_text("mine\n")
    assert main(["validate", "--published", str(path), "--csv", str(table),
                 "--threads", "2"]) == 2
    err = capsys.readouterr().err
    assert "it takes no --threads, --csv" in err
    assert table.read_text() == "mine\n"
    assert main(["validate", "--profile", str(MEASURED / "cpu_profile.toml"), "--kernels",
                 str(path), "--measured", str(path)]) == 2
    assert "go with --published" in capsys.readouterr().err


def test_a_measured_file_naming_an_unknown_network_is_named_before_simulating(tmp_path,
                                                                              capsys):
    steps = tmp_path / "steps.csv"
    steps.write_text("network,batch,mode,measured_s\nlenet5,64,train,0.0067\n"
                     "nosuchnet,64,train,0.0067\n")
    assert main(["validate", "--profile", str(MEASURED / "cpu_profile.toml"), "--measured",
                 str(steps)]) == 2
    err = capsys.readouterr().err
    assert f"{steps}: unknown network(s) nosuchnet: neither a zoo network" in err
