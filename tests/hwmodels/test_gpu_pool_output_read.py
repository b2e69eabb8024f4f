"""A max pool's gradient reads the pool's output y as well as dy and x where the framework
runs cuDNN's pooling backward (or TensorFlow's MaxPoolGrad, which takes the same three);
PyTorch's kernel reads neither x nor y beyond what the op counts (hwmodels/gpu_frameworks.py
POOL_OUTPUT_READ_FRAMEWORKS)."""
import pytest

from hwmodels import catalog
from hwmodels.gpu import GPUModel
from workloads.graph import Op, TensorSpec


def maxpool_grad(batch: int, channels: int, side: int, stride: int) -> Op:
    out = side // stride
    dy = TensorSpec((batch, channels, out, out), 4)
    x = TensorSpec((batch, channels, side, side), 4)
    return Op("pool.grad", "maxpool_grad", ("pool_dy", "x"), (dy, x), x,
              {"kernel": (3, 3), "stride": (stride, stride), "padding": (1, 1)},
              phase="backward", forward="pool")


def model(framework: str) -> GPUModel:
    m = GPUModel(catalog.device("v100"))
    m.framework = framework
    return m


@pytest.mark.parametrize("framework", ["torch7", "tensorflow", "mxnet"])
@pytest.mark.parametrize("stride", [1, 2])
def test_cudnn_pooling_backward_also_reads_the_output(framework, stride):
    op = maxpool_grad(16, 64, 56, stride)
    (own,) = model(framework).kernel_options(op)
    (pytorch,) = model("pytorch").kernel_options(op)
    assert pytorch.traffic_bytes == op.bytes_moved
    assert own.traffic_bytes == op.bytes_moved + op.in_specs[0].nbytes
    assert model(framework).op_time_s(op) > model("pytorch").op_time_s(op)


def test_other_gradients_read_nothing_more():
    spec = TensorSpec((16, 64, 56, 56), 4)
    relu = Op("r.grad", "relu_grad", ("dy", "r"), (spec, spec), spec, {}, phase="backward",
              forward="r")
    assert model("torch7").kernel_options(relu) == model("pytorch").kernel_options(relu)
