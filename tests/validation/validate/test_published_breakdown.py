"""`validate --published --breakdown`: where a row's simulated time goes, summing to what the
model simulates, and a row id it cannot break down named as such."""
import pytest

from simulator.cli import main
from validation.calibrate import published_gpu as pg
from validation.paths import MEASURED
from validation.validate import published_breakdown as pb

PUBLISHED = MEASURED / "published" / "single_gpu.csv"


@pytest.fixture(scope="module")
def rows():
    return {r.row_id: r for r in pg.read_network_rows(str(PUBLISHED)).rows}


# ResNet-34 at batch 1 in Torch7 (host time binds some ops), GoogLeNet on the K80 (bias passes,
# a scatter's atomics), NVIDIA's MXNet AMP ResNet-50 in NHWC (fused pointwise ops), PyTorch FP32
# with its optimizer step
@pytest.mark.parametrize("row_id", ["S258", "S243", "S024", "S003"])
def test_each_phase_sums_to_the_simulated_phase(rows, row_id):
    row = rows[row_id]
    phases = pb.breakdown(row)
    simulated = pg.phase_seconds(row)
    assert set(phases) == set(simulated)
    for name, phase in phases.items():
        assert phase.seconds == pytest.approx(simulated[name], rel=1e-9)
        assert sum(s for s, _ in phase.classes.values()) == pytest.approx(simulated[name],
                                                                          rel=1e-9)
        assert all(s >= 0 for s in phase.seconds_by_bound.values())


def test_host_time_binds_at_batch_1_and_hardly_at_batch_64(rows):
    def host_share(row_id):
        forward = pb.breakdown(rows[row_id])["forward"]
        return forward.seconds_by_bound["host"] / forward.seconds
    # ResNet-34's forward on the V100 in Torch7: at batch 1 the host issues a kernel about as
    # fast as the GPU runs one, and the GPU waits for it a twentieth of the forward; at
    # batch 64 the host runs ahead from the first kernel on
    assert host_share("S258") > 0.05 and host_share("S263") < 0.01


def test_the_report_sets_each_phase_beside_its_published_time(rows):
    text = pb.run(pg.read_network_rows(str(PUBLISHED)), ["S243"])
    assert text.startswith("S243: googlenet_v1 on k80")
    assert "forward: simulated" in text and "published 45.43 ms" in text
    assert "published 111.21 ms" in text and "bound by: arithmetic" in text


def test_a_row_it_cannot_break_down_is_named(capsys):
    assert main(["validate", "--published", str(PUBLISHED), "--breakdown", "S243",
                 "S999"]) == 2
    out, err = capsys.readouterr()
    assert "--breakdown S999" in err and "no row has that row_id" in err and out == ""
    assert main(["validate", "--published", str(PUBLISHED), "--breakdown", "S013"]) == 2
    assert "not simulated: no batch stated" in capsys.readouterr().err
    assert main(["validate", "--breakdown", "S243"]) == 2
    assert "go with --published" in capsys.readouterr().err
