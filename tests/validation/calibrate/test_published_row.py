"""Rows of a published table as people write them (another framework's columns, units in
cells, a transformer's sequence length, a multi-GPU row): each is read as the model will run
it, with what it assumed, or is a named skip; a file without the columns it needs is an
error."""
import csv
import io
import os
import tempfile
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from validation.calibrate import published_gpu as pg

HEADER = ["row_id", "network", "gpu", "framework", "framework_version", "precision",
          "batch_per_gpu", "throughput_img_s", "iter_time_ms", "throughput_origin", "notes"]


def table(tmp_path, rows: list[list[str]], header=HEADER, prefix: bytes = b"") -> pg.Table:
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerows([header, *rows])
    path = tmp_path / "rows.csv"
    path.write_bytes(prefix + out.getvalue().encode())
    return pg.read_network_rows(str(path))


def row(rid: str, network: str, gpu: str = "V100", framework: str = "PyTorch",
        version: str = "", precision: str = "AMP", batch: str = "64", throughput: str = "900",
        notes: str = "") -> list[str]:
    """A row in HEADER's columns."""
    return [rid, network, gpu, framework, version, precision, batch, throughput, "", "", notes]


def outcome(t: pg.Table, rid: str):
    rows = {r.row_id: r for r in t.rows}
    return rows.get(rid) or next(s.reason for s in t.skipped if s.row_id == rid)


def test_the_spellings_of_one_row_read_alike(tmp_path):
    rows = [[f"R{i}", label, "V100", "PyTorch", "1.10", precision, batch, tput, "", "", ""]
            for i, (label, precision, batch, tput) in enumerate([
                ("ResNet-50", "AMP", "256", "1200"), ("resnet50", "Mixed", "256", "1,200"),
                ("ResNet50 v1.5", "FP16 AMP", "256", "1200 img/s"),
                ("resnet-50", "mixed precision", "256.0", "1200.0"),
            ])]
    t = table(tmp_path, rows)
    assert not t.skipped
    assert {(r.network, r.precision, r.batch, r.throughput) for r in t.rows} == {
        ("resnet50", "amp-fp16", 256, 1200.0)}


def test_a_row_with_only_a_step_time(tmp_path):
    t = table(tmp_path, [["R1", "VGG-16", "V100", "PyTorch", "", "FP32", "64", "", "250 ms",
                          "", ""]])
    assert t.rows[0].throughput == pytest.approx(64 / 0.25)
    assert "samples/s = batch / iter_time_ms" in t.rows[0].assumed


@pytest.mark.parametrize("cells, reason", [
    (dict(gpu_count="8"), "8 GPUs: this table scores one GPU's step"),
    (dict(precision="INT8"), "precision 'INT8'"),
    (dict(throughput_img_s="1200 tokens/s"), "a throughput in tokens/s for a network that "
                                             "takes no tokens"),
    (dict(throughput_img_s="12 ms"), "'ms' is not a throughput unit"),
    (dict(throughput_img_s="fast"), "throughput_img_s 'fast' is not a positive number"),
    (dict(throughput_img_s=""), "neither throughput_img_s nor iter_time_ms"),
    (dict(batch_per_gpu="n/a"), "no batch stated"),
    (dict(batch_per_gpu="1,5"), "batch '1,5' is not a whole number"),
    (dict(batch_per_gpu="0"), "batch '0' is not a whole number >= 1"),
    (dict(batch_per_gpu="-5"), "batch '-5' is not a whole number >= 1"),
    (dict(throughput_img_s="1e-300"), "a throughput of 1e-300 samples/s is outside"),
    (dict(throughput_img_s="", iter_time_ms="1e-300"), "a throughput of 2.56e+305 samples/s"),
    (dict(batch_per_gpu="1e300"), "resnet50 at batch 1e+300: a tensor of shape 1e+300x3x224"),
    (dict(batch_per_gpu="100000000000"), "past the most one tensor may hold"),
    (dict(network="SSD300"), "network 'SSD300' is not in the zoo"),
    (dict(seq_len="128"), "seq_len '128' given for resnet50, which takes no sequence"),
    (dict(precision="TF32"), "v100 cannot train in tf32"),
])
def test_each_row_that_cannot_be_run_as_written_is_a_named_skip(tmp_path, cells, reason):
    row = dict(row_id="R1", network="ResNet-50", gpu="V100", framework="PyTorch",
               precision="AMP", batch_per_gpu="256", throughput_img_s="1200", gpus="",
               seq_len="")
    row.update({"gpus" if k == "gpu_count" else k: v for k, v in cells.items()})
    t = table(tmp_path, [list(row.values())], header=list(row))
    assert not t.rows and reason in t.skipped[0].reason


def test_a_bert_row_runs_at_its_sequence_length(tmp_path):
    header = [*HEADER, "seq_len", "throughput_unit"]
    t = table(tmp_path, [
        ["B1", "BERT-base", "A100", "PyTorch", "NGC 21.03", "AMP", "32", "800", "", "",
         "fine-tuning, seq len 384", "", ""],
        ["B2", "bert_base", "A100", "PyTorch", "NGC 21.03", "AMP", "32", "800", "", "", "",
         "", ""],
        ["B3", "BERT-base", "A100", "PyTorch", "NGC 21.03", "AMP", "32", "102400", "", "",
         "seq len 512", "128", "tokens/s"],
        ["B4", "BERT-base", "A100", "PyTorch", "", "AMP", "32", "800", "", "",
         "pretraining phase 1", "", ""],
    ], header=header)
    rows = {r.row_id: r for r in t.rows}
    assert rows["B1"].options == (("seq_len", 384),)
    assert rows["B2"].options == (("seq_len", 128),)
    assert "seq_len 128 (the zoo's default: the row states none)" in rows["B2"].assumed
    assert rows["B3"].options == (("seq_len", 128),)        # the column wins over the notes
    assert rows["B3"].throughput == pytest.approx(800.0)    # 102400 tokens/s over 128
    assert any(a.startswith("pretraining simulated as fine-tuning") for a in rows["B4"].assumed)
    longer = pg.simulate_row(rows["B1"])
    assert longer < pg.simulate_row(rows["B2"])       # 384 tokens a sequence take longer


def test_a_sequence_longer_than_the_network_takes_is_named(tmp_path):
    t = table(tmp_path, [row("G1", "GPT-2", "A100", batch="8", notes="seq_len=4096")])
    assert "exceeds the 1024 positions" in t.skipped[0].reason


def test_fp32_on_an_ampere_gpu_runs_as_its_framework_runs_it(tmp_path):
    t = table(tmp_path, [
        row(f"T{i}", "BERT-base", gpu, framework, version, "FP32", "32", "300")
        for i, (gpu, framework, version) in enumerate([
            ("A100", "TensorFlow", "2.6"), ("A100", "PyTorch", "2.1"),
            ("A100", "PyTorch", "1.10"), ("V100", "TensorFlow", "2.6")])])
    assert [r.precision for r in t.rows] == ["tf32", "fp32", "tf32", "fp32"]
    tf, torch = pg.simulate_row(t.rows[0]), pg.simulate_row(t.rows[1])
    assert tf > torch          # TF32 matmuls against FP32 ones


def test_fp16_in_tensorflow_keeps_fp32_variables(tmp_path):
    t = table(tmp_path, [row("F1", "ResNet-152", framework="TensorFlow", precision="FP16"),
                         row("F2", "ResNet-152", precision="FP16")])
    assert [(r.network, r.precision) for r in t.rows] == [("resnet152_v1", "amp-fp16"),
                                                          ("resnet152", "fp16")]
    assert any("tf_cnn_benchmarks' --use_fp16" in a for a in t.rows[0].assumed)


def test_a_memory_format_the_label_states_is_run(tmp_path):
    t = table(tmp_path, [row("L1", "ResNet-50 v1.5 (NHWC)"), row("L2", "ResNet-50 v1.5")])
    assert [r.memory_format for r in t.rows] == ["nhwc", "nchw"]
    assert "layout nhwc (the row says so)" in t.rows[0].assumed


def test_an_input_size_the_label_states_is_run(tmp_path):
    t = table(tmp_path, [row("I1", "ResNet-50 (224x224)"), row("I2", "ResNet-50 (160x160)"),
                         row("I3", "ResNet-50 (160x128)"), row("I4", "ResNet-50", batch="8x")])
    rows = {r.row_id: r for r in t.rows}
    assert rows["I1"].options == () and rows["I2"].options == (("input_size", 160),)
    assert "input 160x160 (the label says so)" in rows["I2"].assumed
    assert pg.simulate_row(rows["I2"]) > pg.simulate_row(rows["I1"])
    assert "square inputs" in outcome(t, "I3")
    assert "batch '8x' is not a whole number" in outcome(t, "I4")


def test_extra_columns_a_byte_order_mark_and_blank_rows(tmp_path):
    header = ["my_note", *reversed(HEADER), "gpus"]
    row = ["anything", "", "", "", "1200", "256", "AMP", "", "PyTorch", "V100", "ResNet-50",
           "R1", "1"]
    t = table(tmp_path, [row, [""] * len(header)], header=header, prefix=b"\xef\xbb\xbf")
    assert [r.row_id for r in t.rows] == ["R1"] and not t.skipped


def test_a_file_without_a_throughput_column_is_an_error(tmp_path):
    with pytest.raises(pg.PublishedDataError, match="no column throughput_img_s or "
                                                     "iter_time_ms"):
        table(tmp_path, [["R1", "ResNet-50", "V100", "AMP", "256"]],
              header=["row_id", "network", "gpu", "precision", "batch_per_gpu"])


ROWS = [  # one of each outcome: read, read with a unit, skipped for its network, its precision
    ["R1", "ResNet-50", "V100", "PyTorch", "1.10", "AMP", "256", "1200", "", "", ""],
    ["R2", "InceptionV3", "V100", "TensorFlow", "1.14", "FP32", "64", "", "400 ms", "", ""],
    ["R3", "SSD300", "V100", "PyTorch", "", "AMP", "64", "300", "", "", ""],
    ["R4", "BERT-base", "V100", "PyTorch", "", "FP8", "32", "300", "", "", "seq len 128"],
]


@settings(max_examples=30, deadline=None)
@given(st.permutations(range(len(HEADER))),
       st.lists(st.tuples(st.sampled_from(["comment", "url", "my col", "Trust?", "x"]),
                          st.text(st.characters(codec="utf-8", exclude_characters="\r\n\x00"),
                                  max_size=8)),
                max_size=3, unique_by=lambda c: c[0]))
def test_a_rows_outcome_depends_on_neither_column_order_nor_extra_columns(order, extra):
    with tempfile.TemporaryDirectory() as folder:
        base = table(Path(folder), ROWS)
        header = [HEADER[i] for i in order] + [name for name, _ in extra]
        rows = [[row[i] for i in order] + [value for _, value in extra] for row in ROWS]
        os.remove(os.path.join(folder, "rows.csv"))
        shuffled = table(Path(folder), rows, header=header)
    for rid in ("R1", "R2", "R3", "R4"):
        assert outcome(shuffled, rid) == outcome(base, rid)


@pytest.mark.parametrize("version, loop", [
    ("NGC pytorch-19.05 (stated as requirement)", True), ("NGC pytorch-21.03", True),
    ("PyTorch 1.13.1", True), ("NGC pytorch-23.03", False), ("PyTorch 2.1", False),
    ("", False)])
def test_a_pytorch_1_row_steps_torch_optim_tensor_by_tensor(tmp_path, version, loop):
    t = table(tmp_path, [row("P", "ResNet-50 v1.5", version=version),
                         row("T", "ResNet-50 v1.5", framework="TensorFlow", version="1.15")])
    got = outcome(t, "P")
    assert got.optimizer_loop is loop
    assert any("tensor by tensor" in a for a in got.assumed) is loop
    assert outcome(t, "T").optimizer_loop is False
    update = [op for op in pg.row_ops(got) if op.phase == "update"]
    assert update and all(bool(op.attrs.get("optimizer_loop")) is loop for op in update)
