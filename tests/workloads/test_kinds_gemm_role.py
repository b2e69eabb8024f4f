"""A kind's GEMM role (workloads/kinds: GemmRole): declared once in the kind's record, read by
the device models that cost matrix products as their library's kernels."""
import pytest

from workloads.graph import MATMUL_KINDS
from workloads.kinds import GemmRole, KindError, all_kinds, kind_of


def test_every_kind_a_profile_keys_on_a_gemm_shape_has_a_role():
    for name in MATMUL_KINDS:
        assert kind_of(name).gemm_role is not None, name


def test_a_role_has_weights_where_its_kind_has_parameters():
    for k in all_kinds():
        if k.gemm_role is not None and k.phase == "forward" and k.gemm_role.library != "sdpa":
            assert k.gemm_role.weights == (k.param_shapes is not None), k.name


def test_weight_gradients_are_the_grad_weight_passes_of_kinds_with_weights():
    gradients = {k.name for k in all_kinds() if k.gemm_role and k.gemm_role.weight_gradient}
    assert {"linear_grad_weight", "conv2d_grad_weight"} <= gradients
    assert all(kind_of(name).carries_params for name in gradients)


@pytest.mark.parametrize("kwargs, wrong", [
    (dict(library="cublas", dims=lambda op: (1, 1, 1, 1)), "'cublas'"),
    (dict(library="blas", gemm_pass="backward", dims=lambda op: (1, 1, 1, 1)), "'backward'"),
    (dict(library="blas"), "dims"),
    (dict(library="conv", dims=lambda op: (1, 1, 1, 1)), "dims"),
])
def test_a_role_declared_wrongly_is_refused_by_name(kwargs, wrong):
    with pytest.raises(KindError, match=wrong):
        GemmRole(**kwargs)
