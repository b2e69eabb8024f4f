"""A CSV a user hands to a command is read whole or refused naming the file and the line."""
import pytest

from validation.csv_input import read_csv_rows
from workloads.errors import DnnsimError


def _write(tmp_path, text: str):
    path = tmp_path / "rows.csv"
    path.write_text(text, encoding="utf-8")
    return path


def test_a_row_id_given_twice_names_both_lines(tmp_path):
    path = _write(tmp_path, "row_id,x\nA1,1\nA2,2\nA1,3\n")
    with pytest.raises(DnnsimError, match=r"rows.csv, line 4: row_id 'A1' is given twice "
                                          r"\(first on line 2\)"):
        read_csv_rows(path, ("x",), "table", id_column="row_id")
    assert len(read_csv_rows(path, ("x",), "table")) == 3     # ids not checked unless asked


@pytest.mark.parametrize("body, values", [("A1,1,oops\n", 3), ("A1\n", 1)])
def test_a_row_with_another_number_of_values_is_refused(tmp_path, body, values):
    path = _write(tmp_path, "row_id,x\n" + body)
    with pytest.raises(DnnsimError, match=f"line 2: the row has {values} values, the header 2 "
                                          r"\(row_id, x\)"):
        read_csv_rows(path, ("x",), "table")


def test_empty_ids_and_blank_lines_pass(tmp_path):
    path = _write(tmp_path, "row_id,x\n,1\n\n,2\n")
    assert [r["x"] for r in read_csv_rows(path, ("x",), "table", id_column="row_id")] == ["1", "2"]


def test_a_row_of_blank_cells_is_a_blank_line(tmp_path):
    path = _write(tmp_path, "row_id,x\nA1,1\n,\n , \nA2,2\n")
    assert [r["row_id"] for r in read_csv_rows(path, ("x",), "table")] == ["A1", "A2"]


def test_spaces_around_column_names_are_not_part_of_them(tmp_path):
    path = _write(tmp_path, "row_id, x ,y\nA1,1,2\n")
    assert read_csv_rows(path, ("x", "y"), "table") == [{"row_id": "A1", "x": "1", "y": "2"}]


def test_a_column_named_twice_is_refused(tmp_path):
    """csv.DictReader kept the last of the two: validate --measured scored batch 5 where the
    row's first batch column said 4."""
    path = _write(tmp_path, "network,mode,batch,measured_s,batch\nlenet5,train,4,0.01,5\n")
    with pytest.raises(DnnsimError, match=r"rows.csv: column batch is given twice"):
        read_csv_rows(path, ("batch",), "table")
