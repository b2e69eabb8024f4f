"""The calibration grid measures every op kind the IR declares (or a kind is declared costed by
a rule, with its reason), and the grid's blocks of post-2016 networks replay end to end into
profile points for the kinds they were added for."""
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from validation.calibrate import coverage, profile_build
from validation.calibrate.calibration_blocks import BLOCK_CASES, BLOCK_NETWORKS
from validation.calibrate.calibration_nets import GRID_CASES, get
from validation.calibrate.calibration_windows import WINDOW_CASES
from workloads.kinds import OpKind, all_kinds, is_kind, register, unregister
from workloads.training import lower_training

# grid network -> the kinds no older grid case measured, which it is there to measure
NEW_KINDS = {
    "grid_convnext": {"layer_scale", "layer_scale_grad", "dropout_broadcast",
                      "dropout_broadcast_grad", "layernorm", "gelu"},
    "grid_shufflenet": {"channel_shuffle", "channel_shuffle_grad", "concat"},
    "grid_mbconv": {"dropout_broadcast", "silu", "sigmoid", "mul", "mul_grad"},
    "grid_llama_naive_s128": {"pow", "pow_grad", "rsqrt", "rsqrt_grad", "mean", "mean_grad",
                              "mul_table", "mul_table_grad", "repeat_heads",
                              "repeat_heads_grad", "layer_scale", "embedding"},
    "grid_llama_fused_s128": {"attention", "attention_grad", "repeat_heads"},
    "grid_decoder_hd32_fused_s64_v65536": {"embedding_grad", "softmax_xent",
                                           "softmax_xent_grad", "linear_grad_weight"},
    "grid_poolformer": {"sub", "sub_grad", "groupnorm", "avgpool_grad"},
    "grid_encoder_decoder": {"conv_transpose2d", "conv_transpose2d_grad_input",
                             "conv_transpose2d_grad_weight", "upsample", "upsample_grad"},
    "grid_lrn": {"lrn", "lrn_grad"},
    "grid_window": {"pad_spatial", "pad_spatial_grad", "roll", "roll_grad",
                    "attention_bias", "attention_bias_grad", "contiguous"},
    "grid_window_cosine": {"l2_normalize", "l2_normalize_grad", "logit_scale",
                           "logit_scale_grad", "continuous_position_bias",
                           "continuous_position_bias_grad"},
    "grid_map_attention": {"attention_bias", "attention_bias_grad", "softmax"},
    "grid_user_idioms": {"bias_add", "bias_add_grad", "sqrt", "sqrt_grad", "div", "div_grad",
                         "div_grad_divisor", "index_select", "index_select_grad", "unfold",
                         "unfold_grad"},
}
META = {"device_kind": "cpu", "device_name": "xeon-avx512-2c", "threads": 1}


@pytest.fixture(scope="module")
def measured():
    return coverage.measured_kinds()


def test_every_declared_kind_is_measured_by_a_grid_case_or_declared_rule_costed(measured):
    missing = coverage.unmeasured_kinds(measured)
    assert not missing, (f"op kinds no calibration case measures: {missing}; add a grid case "
                         "that runs them (validation/calibrate/calibration_*.py) or declare "
                         "why a rule costs them in coverage.RULE_COSTED")
    names = [k.name for k in all_kinds()]
    assert {"pow", "rsqrt", "mean", "repeat_heads", "channel_shuffle", "layer_scale",
            "dropout_broadcast", "sgd_update"} <= set(names)      # the registry, not a copy
    assert all(k in measured or k in coverage.RULE_COSTED or coverage.is_always_view(k)
               for k in names)


def test_rule_costed_kinds_are_declared_not_measured_and_say_why(measured):
    for kind, reason in coverage.RULE_COSTED.items():
        assert is_kind(kind), kind
        assert kind not in measured, f"{kind} is measured by {measured[kind]}: not rule-costed"
        assert len(reason.split()) >= 5, kind


def test_a_kind_declared_without_a_grid_case_is_reported(measured):
    register(OpKind("coverage_probe", "elementwise"),
             OpKind("coverage_probe_grad", "elementwise", "backward"))
    try:
        assert coverage.unmeasured_kinds(measured) == ["coverage_probe", "coverage_probe_grad"]
    finally:
        unregister("coverage_probe")
        unregister("coverage_probe_grad")
    assert not coverage.unmeasured_kinds(measured)


def test_the_new_blocks_are_grid_cases_that_run_the_kinds_they_were_added_for():
    cases = set(BLOCK_CASES) | set(WINDOW_CASES)
    assert cases <= set(GRID_CASES) and set(NEW_KINDS) <= {n for n, _ in cases}
    for name, kinds in NEW_KINDS.items():
        batch = min(b for n, b in cases if n == name)
        ran = {op.kind for op in lower_training(get(name, batch)).topo() if not op.is_view}
        assert kinds <= ran, (name, kinds - ran)


@settings(max_examples=8, deadline=None)
@given(name=st.sampled_from(sorted(BLOCK_NETWORKS)), batch=st.integers(1, 6))
def test_a_block_runs_the_same_kinds_at_every_batch(name, batch):
    def kinds(b):
        return {op.kind for op in lower_training(get(name, b)).topo() if not op.is_view}
    assert kinds(batch) == kinds(1)


def test_calibration_replays_the_new_blocks_and_records_points_for_their_kinds(tmp_path):
    """The path `dnnsim calibrate` runs (journal.measure_cases, then build_profile), one
    round of each new network at batch 1: every kind it was added for gets profile points."""
    pytest.importorskip("torch")
    from validation.calibrate.journal import measure_cases
    cases = [(name, 1) for name in NEW_KINDS]
    records = measure_cases(cases, tmp_path / "partial.jsonl", "cpu", rounds=1, max_rounds=1,
                            progress=False)
    recorded = {rec["kind"] for rec in records}
    assert set().union(*NEW_KINDS.values()) <= recorded
    assert all(rec["time_s"] > 0 for rec in records)
    profile = profile_build.build_profile(records, META)
    for kind in set().union(*NEW_KINDS.values()):
        assert profile.points(kind), kind


def _synthetic_s(op) -> float:
    """A time law the fit can recover: overhead, FLOPs and bytes."""
    return 2e-6 + 1e-11 * op.flops + 2e-10 * op.bytes_moved


def test_a_profile_from_the_new_blocks_costs_other_sizes_of_them_without_fallbacks():
    """Refitted from the new blocks' op measurements (synthetic times), a profile costs a
    block of other sizes from its own points: no kind falls back to a family rule."""
    from validation.calibrate.calibration_blocks import convnext_grid, mbconv_grid
    from validation.calibrate.calibration_windows import map_attention_grid, window_grid
    from validation.calibrate.journal import records_of_replay
    from validation.validate.compare import machine_checked_elsewhere, simulate_graph
    from workloads.zoo import transformers as zt
    records = []
    for name, batch in set(BLOCK_CASES) | set(WINDOW_CASES):
        train = lower_training(get(name, batch))
        times = {op.name: _synthetic_s(op) for op in train.topo() if not op.is_view}
        records += records_of_replay(name, train, [times])
    profile = profile_build.build_profile(records, META)
    others = [convnext_grid(3), mbconv_grid(5), window_grid(2, True), map_attention_grid(3),
              get("grid_shufflenet", 6), get("grid_poolformer", 6),
              get("grid_encoder_decoder", 3), get("grid_lrn", 3), get("grid_user_idioms", 3),
              zt.llama(3, layers=2, hidden=128, heads=4, kv_heads=2, intermediate=344,
                       vocab_size=1000, seq_len=96)]
    with machine_checked_elsewhere():
        for graph in others:
            step_s, fallbacks = simulate_graph(graph, profile)
            assert step_s > 0 and not fallbacks, (graph.name, fallbacks)
