"""Training precision: tensor widths and the stamp every op carries."""
import pytest

from workloads import zoo
from workloads.graph import WorkloadError
from workloads.precision import PRECISIONS, precision_of, with_precision
from workloads.training import lower_training, training_memory


def test_amp_halves_activations_and_keeps_fp32_master_weights():
    g = zoo.get("resnet18", batch=8)
    fp32 = training_memory(lower_training(with_precision(g, "fp32")))
    amp = training_memory(lower_training(with_precision(g, "amp-fp16")))
    half = training_memory(lower_training(with_precision(g, "fp16")))
    assert amp.activations_bytes * 2 == fp32.activations_bytes
    assert amp.weights_bytes == fp32.weights_bytes          # FP32 master weights
    assert half.weights_bytes * 2 == fp32.weights_bytes     # model.half()


@pytest.mark.parametrize("precision", PRECISIONS)
def test_every_op_of_the_training_graph_carries_the_precision(precision):
    train = lower_training(with_precision(zoo.get("lenet5", batch=4), precision))
    assert {precision_of(op) for op in train if op.kind != "softmax_xent"} == {precision}
    grads = [op for op in train if op.kind.endswith("_grad_weight")]
    width = 4 if precision in ("fp32", "tf32", "amp-fp16", "amp-bf16") else 2
    assert all(op.out.dtype_bytes == width for op in grads)


def test_same_precision_is_the_same_graph_and_unknown_is_an_error():
    g = with_precision(zoo.get("lenet5", batch=2), "bf16")
    assert with_precision(g, "bf16") is g
    with pytest.raises(WorkloadError, match="unknown precision 'fp8'.*fp32, tf32"):
        with_precision(g, "fp8")
