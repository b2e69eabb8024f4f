"""A gradient read as a strided slice (a concat input's channels of a batch) is copied into a
tensor of its own where the framework makes it contiguous first (hwmodels/gpu_frameworks.py
SLICE_COPY_FRAMEWORKS): cudnn.torch's modules from Lua, TensorFlow's Slice op per input;
PyTorch's kernels read the view as it is."""
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hwmodels import catalog
from hwmodels.gpu import GPUModel
from workloads import zoo
from workloads.graph import Op, TensorSpec
from workloads.training import lower_training


def relu_grad(channels: int, strided: bool) -> Op:
    spec = TensorSpec((16, channels, 28, 28), 4)
    return Op("b.relu.grad", "relu_grad", ("cat.grad", "b.relu"), (spec, spec), spec,
              {"dy_strided": True} if strided else {}, phase="backward", forward="b.relu")


def model(framework: str) -> GPUModel:
    m = GPUModel(catalog.device("v100"))
    m.framework = framework
    return m


@pytest.mark.parametrize("framework,kernels,framework_ops", [
    ("torch7", 2, 1),        # the copy from Lua: a bare launch inside the module
    ("tensorflow", 2, 2),    # a Slice op of its own
])
def test_a_strided_slice_is_copied_where_the_framework_copies_it(framework, kernels,
                                                                  framework_ops):
    m = model(framework)
    (plain,) = m.kernel_options(relu_grad(64, False))
    (sliced,) = m.kernel_options(relu_grad(64, True))
    dy = relu_grad(64, True).in_specs[0].nbytes
    assert sliced.traffic_bytes == plain.traffic_bytes + 2 * dy
    assert (sliced.kernels, sliced.framework_ops) == (kernels, framework_ops)
    assert m.op_time_s(relu_grad(64, True)) > m.op_time_s(relu_grad(64, False))


def test_pytorch_reads_the_view_as_it_is():
    m = model("pytorch")
    assert m.kernel_options(relu_grad(64, True)) == m.kernel_options(relu_grad(64, False))


@settings(max_examples=20, deadline=None)
@given(channels=st.integers(1, 512))
def test_the_copy_costs_the_slice_it_moves(channels):
    m = model("torch7")
    (plain,) = m.kernel_options(relu_grad(channels, False))
    (sliced,) = m.kernel_options(relu_grad(channels, True))
    assert sliced.traffic_bytes - plain.traffic_bytes == 2 * 16 * channels * 28 * 28 * 4


def _strided_readers(batch: int) -> set[str]:
    g = lower_training(zoo.get("googlenet_v1", batch=batch))
    return {op.name for op in g if op.attrs.get("dy_strided")}


def test_each_inception_branch_reads_its_slice_strided_from_two_images_on():
    readers = _strided_readers(16)
    # four branches in each of the nine modules, the first op of each branch's backward
    assert len(readers) == 36
    assert "inception3a.branch1.relu.grad" in readers
    assert all(name.endswith(".relu.grad") for name in readers)
    # one image: a channel slice of NCHW is one contiguous block, a view everywhere
    assert _strided_readers(1) == set()
