"""Which op kinds `dnnsim calibrate` measures: every kind of the registry (forward, and the
backward and update kinds the training lowering makes) is measured by some case of the
calibration grid, or declared here as costed by its family's rule, with the reason. A kind
neither measured nor declared is one a calibrated profile silently lacks, so that a model
using it is costed on the machine by a rule nobody chose (tests/validation/calibrate/
test_coverage.py fails on it).

Kinds that are always views (no kernel, no time) need neither.
"""
from __future__ import annotations

from workloads.kinds import all_kinds, kind_of
from workloads.training import lower_training

from .calibration_nets import get
from .cases import calibration_cases

# kind -> why its family's rule costs it and no grid case measures it
_NO_GRID_CASE = "imported models only (F.glu, torch.amax / max(x, dim), torch.sin / cos / " \
    "erf, F.fold, a sum that broadcasts, DETR's learned queries, exp or 1 - w of a parameter, a " \
    "product with a constant matrix, one row taken per sample, a layer over constants, a tensor " \
    "repeated over the batch, a 3-D convolution or pool, a sum over features, an L2 norm " \
    "over dimensions (torch.linalg.vector_norm), a max, min, top-k or sort along a " \
    "dimension with its positions, torch.addcmul of a learned scale and shift, a rotary " \
    "embedding's complex product); no grid " \
    "block runs it yet"
RULE_COSTED: dict[str, str] = {k: _NO_GRID_CASE for k in ("glu", "glu_grad", "amax",
                                                           "amax_grad", "sin", "sin_grad",
                                                           "cos", "cos_grad",
                                                           "add_broadcast",
                                                           "add_broadcast_grad",
                                                           "learned_queries",
                                                           "learned_queries_grad",
                                                           "weight_exp", "weight_exp_grad",
                                                           "weight_affine",
                                                           "weight_affine_grad",
                                                           "constant_matmul",
                                                           "constant_matmul_grad",
                                                           "take_per_sample",
                                                           "take_per_sample_grad",
                                                           "constant_tensor",
                                                           "repeat_batch",
                                                           "repeat_batch_grad",
                                                           "conv3d", "conv3d_grad_input",
                                                           "conv3d_grad_weight", "sum",
                                                           "sum_grad", "maxpool3d",
                                                           "maxpool3d_grad", "avgpool3d",
                                                           "avgpool3d_grad", "vector_norm",
                                                           "vector_norm_grad",
                                                           "select_values",
                                                           "select_values_grad", "addcmul",
                                                           "addcmul_grad",
                                                           "mul_table_complex",
                                                           "mul_table_complex_grad",
                                                           "erf", "erf_grad", "fold",
                                                           "fold_grad")}
# recurrent layers (nn.LSTM, nn.GRU, nn.RNN): their serial steps are costed step by step
# from the family's GEMM curve and the cell's pointwise ops (hwmodels/model.py serial_time_s)
RULE_COSTED.update({k: "imported recurrent layers only (nn.LSTM, nn.GRU, nn.RNN); each step "
                       "costed as its products and pointwise ops; no grid block runs one yet"
                    for k in ("recurrence", "recurrence_grad_input", "recurrence_grad_weight",
                              "recurrence_grad_state")})


def measured_kinds(cases=None) -> dict[str, str]:
    """kind -> the first case (network name) whose training graph runs it as a kernel, over
    `cases` (default: every case a full calibration replays)."""
    found: dict[str, str] = {}
    for name, batch in cases if cases is not None else calibration_cases():
        for op in lower_training(get(name, batch)).topo():
            if not op.is_view:
                found.setdefault(op.kind, name)
    return found


def is_always_view(kind: str) -> bool:
    return kind_of(kind).view is True


def kinds_without_points(profile) -> list[str]:
    """Declared kinds that run kernels and that neither `profile` measured nor RULE_COSTED
    declares: a model with them is costed on that machine by a family rule."""
    return [k.name for k in all_kinds()
            if not is_always_view(k.name) and k.name not in RULE_COSTED
            and not profile.covers(k.name)]


def lacking_note(profile, path) -> str:
    """One line naming the kinds `profile` (written to `path`) has no points for, or ''."""
    lacking = kinds_without_points(profile)
    if not lacking:
        return ""
    return (f"{path}: no measurements of {len(lacking)} op kinds ({', '.join(lacking)}); "
            "models with them are costed by family rules on the machine it describes")


def unmeasured_kinds(measured=None) -> list[str]:
    """Declared kinds that run kernels, that no calibration case measures and that
    RULE_COSTED does not declare, in declaration order."""
    measured = measured_kinds() if measured is None else measured
    return [k.name for k in all_kinds()
            if not is_always_view(k.name) and k.name not in measured
            and k.name not in RULE_COSTED]
