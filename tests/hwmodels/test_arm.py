"""ARM boards (hwmodels/arm.py): the TCP stack's CPU time and the Arm Compute Library's
convolutions (hwmodels/arm_conv.py): the method it picks, its GEMMs' whole blocks, its
reshaping passes and buffers."""
import pytest
from hypothesis import given
from hypothesis import strategies as st

from hwmodels import catalog
from hwmodels.arm import ARMModel
from hwmodels.arm_conv import conv_plan, winograd_tile
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


def _conv(c_in, c_out, kernel, side, stride=1, groups=1, dilation=1):
    b = GraphBuilder("g", (c_in, side, side), 1, 4)
    pad = dilation * (kernel - 1) // 2
    b.conv2d(b.input(), c_out, (kernel, kernel), (stride, stride), (pad, pad),
             (dilation, dilation), groups, False, name="c")
    return b.graph.op("c")


def test_a_grouped_convolution_holds_one_groups_buffers():
    # 8 input channels a group: the GEMM method
    op = _conv(64, 128, 3, 56, groups=8)
    assert RPI4.workspace_bytes(op) == (9 * 64 // 8 + 128 // 8) * 56 * 56 * 4
    assert RPI4.workspace_bytes(zoo.get("resnet50").op("relu")) == 0


@pytest.mark.parametrize("conv, tile", [
    (dict(c_in=64, c_out=64, kernel=3, side=56), (4, 4)),
    (dict(c_in=16, c_out=8, kernel=3, side=9), (4, 4)),
    (dict(c_in=512, c_out=512, kernel=3, side=4), (2, 2)),    # a map of at most 4: 2x2
    (dict(c_in=64, c_out=64, kernel=3, side=56, groups=4), (4, 4)),   # 16 a group
    (dict(c_in=15, c_out=64, kernel=3, side=56), None),       # under 16 input channels
    (dict(c_in=64, c_out=64, kernel=3, side=56, groups=8), None),
    (dict(c_in=64, c_out=64, kernel=3, side=56, stride=2), None),
    (dict(c_in=64, c_out=64, kernel=3, side=56, dilation=2), None),
    (dict(c_in=64, c_out=256, kernel=1, side=56), None),      # no 1x1 transform
    (dict(c_in=64, c_out=64, kernel=5, side=56), None),       # 5x5 needs fast math
    (dict(c_in=3, c_out=64, kernel=7, side=224, stride=2), None),
])
def test_the_library_picks_winograd_where_its_rule_does(conv, tile):
    op = _conv(**conv)
    assert winograd_tile(op) == tile
    assert conv_plan(op).method == ("gemm" if tile is None else "winograd")


def test_a_gemm_pays_whole_six_by_eight_blocks():
    # 7 x 7 = 49 pixels -> 54 rows; 28 output channels -> 32 columns (sgemm_8x6)
    op = _conv(64, 28, 1, 7)
    assert conv_plan(op).gemm_flops == 2 * 54 * 32 * 64
    assert op.flops == 2 * 49 * 28 * 64


def test_winograd_multiplies_a_quarter_of_the_direct_arithmetic():
    # F(4x4, 3x3) on 56 x 56: 196 tiles, 36 GEMMs of 196 (-> 198 rows) x 64 x 64
    op = _conv(64, 64, 3, 56)
    plan = conv_plan(op)
    assert plan.gemm_flops == 36 * 2 * 198 * 64 * 64
    assert plan.gemm_flops / op.flops == pytest.approx(36 * 198 / (9 * 56 * 56))
    # permute to NHWC, transform in, transform out, permute back
    in_el = out_el = 64 * 56 * 56
    assert plan.pass_elements == (2 * in_el, in_el + 36 * 196 * 64, 36 * 196 * 64 + out_el,
                                  2 * out_el)
    assert plan.workspace_elements == 2 * 36 * 196 * 64 + in_el + out_el


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
def test_buffers_grow_with_channels_and_taps_under_one_method(cin, cout, k, side):
    def plan(c_in, c_out, kernel):
        return conv_plan(_conv(c_in, c_out, kernel, side))
    if plan(cin, cout, k).method == plan(cin + 1, cout + 1, k).method:
        assert (plan(cin, cout, k).workspace_elements
                < plan(cin + 1, cout, k).workspace_elements
                < plan(cin + 1, cout + 1, k).workspace_elements)
    if plan(cin, cout, k).method == "gemm":
        assert plan(cin, cout, 1).workspace_elements <= plan(cin, cout, k).workspace_elements


@given(st.integers(1, 256), st.integers(1, 256), st.sampled_from([1, 3, 5, 7]),
       st.integers(2, 40), st.sampled_from([1, 2]))
def test_the_gemms_do_no_less_than_their_share_of_the_arithmetic(cin, cout, k, side, stride):
    op = _conv(cin, cout, k, side, stride=stride)
    plan = conv_plan(op)
    tile = winograd_tile(op)
    # whole blocks only add; Winograd multiplies (t + k - 1)^2 points per t x t outputs
    share = 1.0 if tile is None else (tile[0] + k - 1) * (tile[1] + k - 1) / (
        tile[0] * tile[1] * k * k)
    assert plan.gemm_flops >= op.flops * share * (1 - 1e-12)
    assert RPI4.curve_time_s(op) > 0


def test_a_convolution_adds_its_im2col_and_col2im_passes():
    conv, relu = _conv(64, 64, 1, 12), zoo.get("resnet50").op("relu")   # 1x1: GEMM
    roofline = CPUModel.curve_time_s(RPI4, conv)   # 144 rows, 64 columns: whole blocks
    # im2col reads the 64 x 12 x 12 input and writes 64 taps by 12 x 12 pixels; col2im
    # reads and writes the 64 x 12 x 12 output; each pass is dispatched on its own
    moved = (64 * 144 + 64 * 144 + 2 * 64 * 144) * 4
    passes = moved / (12.8e9 * 0.35) + 2 * 10e-6
    assert RPI4.curve_time_s(conv) == pytest.approx(roofline + passes)
    assert RPI4.curve_time_s(relu) == CPUModel.curve_time_s(RPI4, relu)


def test_a_winograd_convolution_costs_its_gemms_and_four_passes():
    conv = zoo.get("resnet50").op("layer1.0.conv2")       # 3x3, 64 -> 64 on 56 x 56
    plan = conv_plan(conv)
    assert plan.method == "winograd"
    gemm_s = (plan.gemm_flops + RPI4.half_efficiency_flops("conv")) / (
        RPI4.peak_flops * RPI4.max_efficiency("conv"))
    passes_s = sum(e * 4 for e in plan.pass_elements) / (12.8e9 * 0.35) + 4 * 10e-6
    expected = max(gemm_s, RPI4.memory_time_s(conv)) + 10e-6 + passes_s
    assert RPI4.curve_time_s(conv) == pytest.approx(expected)
