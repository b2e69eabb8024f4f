"""A measured-steps CSV (`validate --measured`) is read whole or refused: each bad row is an
error naming the file, the line, the field and the value, never a row scored as something
else."""
import pytest

from validation.calibrate.steps_csv import read_steps_csv, write_steps_csv
from workloads.graph import WorkloadError

HEADER = "network,batch,mode,measured_s\n"


@pytest.mark.parametrize("body, words", [
    ("lenet5,64,dance,0.0067\n", ("line 2", "mode must be one of train, infer", "'dance'")),
    ("lenet5,abc,train,0.0067\n", ("line 2", "batch must be a whole number", "'abc'")),
    ("lenet5,0,train,0.0067\n", ("line 2", "batch", "'0'")),
    ("lenet5,64,train,fast\n", ("line 2", "measured_s", "'fast'")),
    ("lenet5,64,train,0.0067\nlenet5,64,train,0.0067,9\n",
     ("line 3", "the row has 5 values, the header 4")),
    ("lenet5,64,train\n", ("line 2", "the row has 3 values, the header 4")),
    ("", ("no rows",)),
])
def test_a_bad_row_or_an_empty_file_is_refused_naming_it(tmp_path, body, words):
    path = tmp_path / "steps.csv"
    path.write_text(HEADER + body, encoding="utf-8")
    with pytest.raises(WorkloadError) as info:
        read_steps_csv(path)
    assert str(path) in str(info.value)
    for word in words:
        assert word in str(info.value)


def test_a_missing_or_undecodable_file_is_named(tmp_path):
    with pytest.raises(WorkloadError, match="nope.csv: cannot read"):
        read_steps_csv(tmp_path / "nope.csv")
    latin1_row = "caf\xe9,1,train,1\n".encode("latin-1")
    (tmp_path / "latin1.csv").write_bytes(HEADER.encode() + latin1_row)
    with pytest.raises(WorkloadError, match="latin1.csv: not a CSV file"):
        read_steps_csv(tmp_path / "latin1.csv")


def test_a_byte_order_mark_is_not_part_of_the_first_column(tmp_path):
    rows = [{"network": "lenet5", "batch": 64, "mode": "train", "measured_s": 0.0067}]
    write_steps_csv(rows, tmp_path / "plain.csv")
    (tmp_path / "bom.csv").write_bytes(b"\xef\xbb\xbf" + (tmp_path / "plain.csv").read_bytes())
    assert read_steps_csv(tmp_path / "bom.csv") == read_steps_csv(tmp_path / "plain.csv")
