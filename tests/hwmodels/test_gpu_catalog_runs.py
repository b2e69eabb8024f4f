"""Every catalog GPU trains a small network end to end in each precision it can run; a
precision it lacks is a clear error naming the ones it has."""
import pytest

from hwmodels import catalog
from simulator.api import simulate
from simulator.cluster import Cluster
from simulator.policies import ConfigError
from workloads.builder import GraphBuilder
from workloads.precision import PRECISIONS


def _small_cnn():
    b = GraphBuilder("small_cnn", input_shape=(3, 32, 32), batch=32)
    x = b.relu(b.batchnorm(b.conv2d(b.input(), 32, 3, padding=1)))
    x = b.maxpool(b.relu(b.conv2d(x, 64, 3, padding=1)), 2)
    b.linear(b.flatten(x), 10)
    return b.build()


def _trains_in(spec, precision: str) -> bool:
    """FP32 and FP16 storage run on every GPU (cuDNN computes FP16 in FP32 where the part has
    no fast FP16); TF32 and BF16 need the units the datasheet lists a peak for."""
    arithmetic = {"amp-bf16": "bf16"}.get(precision, precision)
    return arithmetic in ("fp32", "fp16", "amp-fp16") or arithmetic in spec.peak_flops_by_precision


@pytest.mark.parametrize("name", catalog.names("gpu"))
def test_each_gpu_trains_in_its_precisions_and_names_them_when_it_cannot(name):
    spec = catalog.device(name)
    cluster = Cluster.build(name)
    for precision in PRECISIONS:
        if _trains_in(spec, precision):
            result = simulate(_small_cnn(), cluster, precision=precision)
            assert result.iteration_time_s > 0, (name, precision)
        else:
            with pytest.raises(ConfigError, match=f"'{name}' cannot train in {precision}"):
                simulate(_small_cnn(), cluster, precision=precision)
