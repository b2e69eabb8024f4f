"""Published rows whose harness timed the forward and the backward pass apart (Torch7's and
convnet-benchmarks' tables): read as such, simulated phase by phase, and reported apart."""
import pytest

from validation.calibrate import published_gpu as pg
from validation.validate import published as pv

HEADER = "row_id,network,gpu,precision,batch_per_gpu,throughput_img_s,framework,fwd_ms,bwd_ms\n"


def read(tmp_path, body):
    path = tmp_path / "rows.csv"
    path.write_text(HEADER + body, encoding="utf-8")
    return pg.read_network_rows(str(path))


def test_a_harness_that_times_each_pass_gives_the_row_its_phase_times(tmp_path):
    table = read(tmp_path, "\n".join([
        "a,ResNet-18,GTX 1080,FP32,16,320.0,Torch7 (cudnn.torch),16.0,34.0",
        "b,ResNet-18,GTX 1080,FP32,16,320.0,Torch7 (cudnn.torch),16.0,",
        "c,ResNet-18,V100,FP32,16,780.0,PyTorch,,",
    ]))
    phases = {r.row_id: r.phase_s for r in table.rows}
    assert phases["a"] == pytest.approx((0.016, 0.034))
    assert phases["b"] is None and phases["c"] is None


def test_the_phases_add_up_to_the_simulated_step(tmp_path):
    row = read(tmp_path, "a,ResNet-18,GTX 1080,FP32,16,320.0,PyTorch,,\n").rows[0]
    seconds = pg.phase_seconds(row)
    assert set(seconds) == {"forward", "backward", "update"}
    assert seconds["backward"] > seconds["forward"] > seconds["update"] > 0
    assert row.batch / sum(seconds.values()) == pg.simulate_row(row)


def test_each_phase_is_scored_against_its_own_time(tmp_path):
    row = read(tmp_path, "a,VGG-16,GTX 1080,FP32,16,87.5,Torch7 (cudnn.torch),60.0,123.0\n"
               ).rows[0]
    scored = pv.score_networks([row])[0]
    seconds = pg.phase_seconds(row)
    assert set(seconds) == {"forward", "backward"}     # forward+backward only: no update
    errors = scored.phase_errors()
    assert errors["forward"] == pytest.approx(seconds["forward"] / 0.060 - 1.0)
    assert errors["backward"] == pytest.approx(seconds["backward"] / 0.123 - 1.0)
    groups = {g.name: g for g in pv.phase_groups([scored])}
    assert set(groups) == {"forward all", "forward gtx1080", "backward all",
                           "backward gtx1080"}
    assert groups["backward gtx1080"].mape == pytest.approx(abs(errors["backward"]))


def test_the_report_lists_the_phases_only_where_rows_publish_them(tmp_path):
    timed = read(tmp_path, "a,VGG-16,GTX 1080,FP32,16,87.5,Torch7 (cudnn.torch),60.0,123.0\n")
    text = pv.report(timed, pv.score_networks(timed.rows))
    assert "forward and backward apart" in text and "backward gtx1080" in text
    untimed = read(tmp_path, "a,VGG-16,GTX 1080,FP32,16,87.5,PyTorch,,\n")
    assert "forward and backward apart" not in pv.report(untimed,
                                                         pv.score_networks(untimed.rows))
