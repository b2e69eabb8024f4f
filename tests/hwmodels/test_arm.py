"""ARM boards (hwmodels/arm.py): the TCP stack's CPU time and the Arm Compute Library's GEMM
convolution buffers."""
import pytest
from hypothesis import given
from hypothesis import strategies as st

from hwmodels import catalog
from hwmodels.arm import ARMModel
from hwmodels.cpu import CPUModel
from hwmodels.specs import HardwareError
from simulator.api import simulate
from simulator.cli import main
from simulator.cluster import Cluster
from workloads import zoo
from workloads.builder import GraphBuilder

RPI4 = ARMModel(catalog.device("rpi4"))


def test_the_stem_holds_its_im2col_matrix_and_gemm_output():
    stem = zoo.get("resnet50").op("conv1")
    # 3 channels x 7 x 7 taps by 112 x 112 pixels, and 64 channels by the same pixels, fp32
    assert RPI4.workspace_bytes(stem) == (3 * 49 + 64) * 112 * 112 * 4


def test_a_grouped_convolution_holds_one_groups_buffers():
    b = GraphBuilder("g", (64, 56, 56), 1, 4)
    x = b.input()
    b.conv2d(x, 128, (3, 3), (1, 1), (1, 1), (1, 1), 4, False, name="grouped")
    op = b.graph.op("grouped")
    assert RPI4.workspace_bytes(op) == (9 * 64 // 4 + 128 // 4) * 56 * 56 * 4
    assert RPI4.workspace_bytes(b.graph.op(x)) == 0


def test_a_board_holds_the_buffers_while_the_convolution_runs():
    cluster = Cluster.build("rpi4", 1, "eth1g")
    run = simulate("resnet50", cluster, "sequential", training=False)
    g = zoo.get("resnet50")
    weights = sum(op.param_bytes for op in g)
    # the peak is at least the weights, the stem's output and its buffers
    stem = g.op("conv1")
    assert run.peak_memory_bytes["arm0"] >= weights + stem.out.nbytes + RPI4.workspace_bytes(stem)


def test_the_stack_takes_eight_cycles_a_byte_at_the_boards_clock():
    assert RPI4.tcp_stack_time_s(1.5e9) == pytest.approx(8.0)
    assert RPI4.memcpy_time_s(1e6) == pytest.approx(2e6 / (12.8e9 * 0.35))


def test_the_stack_runs_at_the_clock_of_the_core_that_runs_it():
    rk3399 = catalog.device("rk3399")
    # a big.LITTLE board's clock_hz is an effective convolution clock; the stack runs on
    # CPU0, one of its Cortex-A53s, at 1.4 GHz
    assert rk3399.clock_hz < 1.1e9
    assert ARMModel(rk3399).tcp_stack_time_s(1.4e9) == pytest.approx(8.0)
    # boards of like cores give no stack clock: it follows clock_hz, overrides included
    for name in ("rpi4", "rpi3bplus"):
        spec = catalog.device(name)
        assert spec.tcp_stack_clock_hz is None
        faster = ARMModel(spec.with_options(clock_hz=2 * spec.clock_hz))
        assert faster.tcp_stack_time_s(1e6) == pytest.approx(
            ARMModel(spec).tcp_stack_time_s(1e6) / 2)


@pytest.mark.parametrize("bad", [0.0, -1.4e9, float("nan"), "fast"])
def test_a_stack_clock_that_is_not_a_positive_number_is_refused_by_name(bad):
    with pytest.raises(HardwareError, match="tcp_stack_clock_hz"):
        catalog.device("rk3399").with_options(tcp_stack_clock_hz=bad)


@pytest.mark.parametrize("value", ["0", "-1.4e9"])
def test_a_bad_stack_clock_on_the_command_line_exits_2_naming_it(capsys, value):
    code = main(["simulate", "--workload", "lenet5", "--batch", "1", "--hardware", "rk3399",
                 "--inference", "--hardware-option", f"tcp_stack_clock_hz={value}"])
    err = capsys.readouterr().err
    assert code == 2, err
    assert "tcp_stack_clock_hz" in err and "rk3399" in err and "Traceback" not in err


@given(st.integers(1, 512), st.integers(1, 512), st.sampled_from([1, 3, 5, 7]),
       st.integers(8, 64))
def test_buffers_grow_with_channels_and_taps(cin, cout, k, side):
    def ws(c_in, c_out, kernel):
        b = GraphBuilder("g", (c_in, side, side), 1, 4)
        b.conv2d(b.input(), c_out, (kernel, kernel), (1, 1), (kernel // 2, kernel // 2),
                 (1, 1), 1, False, name="c")
        return RPI4.workspace_bytes(b.graph.op("c"))
    assert ws(cin, cout, k) < ws(cin + 1, cout, k) < ws(cin + 1, cout + 1, k)
    assert ws(cin, cout, 1) <= ws(cin, cout, k)


def test_a_convolution_adds_its_im2col_and_col2im_passes():
    g = zoo.get("resnet50")
    conv, relu = g.op("layer1.0.conv2"), g.op("relu")
    roofline = CPUModel.curve_time_s(RPI4, conv)
    # im2col reads the 64 x 56 x 56 input and writes 9 x 64 taps by 56 x 56 pixels; col2im
    # reads and writes the 64 x 56 x 56 output; each pass is dispatched on its own
    moved = (64 * 56 * 56 + 9 * 64 * 56 * 56 + 2 * 64 * 56 * 56) * 4
    passes = moved / (12.8e9 * 0.35) + 2 * 10e-6
    assert RPI4.curve_time_s(conv) == pytest.approx(roofline + passes)
    assert RPI4.curve_time_s(relu) == CPUModel.curve_time_s(RPI4, relu)
