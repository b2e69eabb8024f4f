"""A gradient's contributions summed as each framework sums them (hwmodels/gpu_frameworks.py
PAIRWISE_SUM_FRAMEWORKS): PyTorch adds them pairwise as they arrive, Torch7's containers copy
the first and add the others in place, TensorFlow and MXNet sum all of them in one kernel."""
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hwmodels import catalog
from hwmodels.gpu import GPUModel
from workloads.graph import Op, TensorSpec


def grad_sum(parts: int, elements: int = 1 << 20) -> Op:
    spec = TensorSpec((elements,), 4)
    return Op("x.grad_acc", "grad_accumulate", tuple(f"g{i}" for i in range(parts)),
              tuple(spec for _ in range(parts)), spec, {}, phase="backward", forward="x")


def model(framework: str) -> GPUModel:
    m = GPUModel(catalog.device("v100"))
    m.framework = framework
    return m


@pytest.mark.parametrize("framework,moved,kernels", [
    ("pytorch", 9, 3),          # three adds of two reads and a write
    ("torch7", 11, 4),          # a copy, then three adds in place
    ("tensorflow", 5, 1),       # AddN: four reads, one write
    ("mxnet", 5, 1),
])
def test_four_contributions_move_what_the_framework_runs(framework, moved, kernels):
    op = grad_sum(4)
    (option,) = model(framework).kernel_options(op)
    assert option.traffic_bytes == moved * op.out.nbytes
    assert option.kernels == kernels


def test_two_contributions_in_pytorch_are_the_ops_own_count():
    op = grad_sum(2)
    (option,) = model("pytorch").kernel_options(op)
    assert option.traffic_bytes == op.bytes_moved and option.kernels == 1


@settings(max_examples=30, deadline=None)
@given(parts=st.integers(2, 8), elements=st.integers(1, 1 << 22),
       framework=st.sampled_from(["pytorch", "torch7", "tensorflow"]))
def test_one_more_contribution_never_sums_faster(parts, elements, framework):
    m = model(framework)
    assert m.op_time_s(grad_sum(parts + 1, elements)) >= m.op_time_s(grad_sum(parts, elements))
