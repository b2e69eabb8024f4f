"""What a GPU's L2 keeps from DRAM in a step (hwmodels/gpu_l2.py): a second pass over an input
that fits, and the tensor the kernel just before wrote, where all that kernel touched fits."""
from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hwmodels import catalog, gpu_l2
from hwmodels.gpu import GPUModel
from workloads.graph import Op, TensorSpec
from workloads.training import lower_training
from workloads.zoo import get

MIB = 2 ** 20


def op(name: str, kind: str, inputs: tuple[str, ...], nbytes: int) -> Op:
    spec = TensorSpec((nbytes // 4,), 4)
    return Op(name, kind, inputs, tuple(spec for _ in inputs), spec)


def chain(nbytes: int) -> list[Op]:
    """bn -> relu -> flatten (a view) -> relu, then an add of the bn's output and the last."""
    return [op("bn", "batchnorm", ("x",), nbytes), op("r1", "relu", ("bn",), nbytes),
            Op("v", "flatten", ("r1",), (TensorSpec((nbytes // 4,), 4),),
               TensorSpec((nbytes // 4,), 4)),
            op("r2", "relu", ("v",), nbytes), op("sum", "add", ("bn", "r2"), nbytes)]


def hits(ops: list[Op], l2_bytes: int | None) -> list[float]:
    reuse = gpu_l2.L2Reuse(l2_bytes)
    return [reuse.hit_bytes(o, o.is_view) for o in ops]


def test_the_tensor_the_kernel_before_wrote_is_read_from_the_l2():
    """r1 reads bn's output, r2 reads r1's through a view; the add reads r2's output from L2
    but bn's, written three kernels before, from DRAM."""
    size = 4 * MIB
    assert hits(chain(size), 40 * MIB) == [0.0, size, 0.0, size, size]


def test_nothing_is_kept_where_the_kernel_before_touched_more_than_the_l2():
    """A relu of 4 MiB touches 8 MiB: a 6 MiB L2 keeps its output but not a 7 MiB one's."""
    assert hits(chain(3 * MIB), 6 * MIB)[1:] == [3 * MIB, 0.0, 3 * MIB, 3 * MIB]
    assert hits(chain(4 * MIB), 6 * MIB) == [0.0] * 5
    assert hits(chain(MIB), None) == [0.0] * 5


def test_the_l2_carries_over_between_calls_on_one_stream():
    ops, state = chain(MIB), {}
    first = gpu_l2.L2Reuse(40 * MIB, state)
    got = [first.hit_bytes(o, o.is_view) for o in ops[:2]]
    second = gpu_l2.L2Reuse(40 * MIB, state)
    got += [second.hit_bytes(o, o.is_view) for o in ops[2:]]
    assert got == hits(ops, 40 * MIB)


def test_a_second_pass_over_an_input_that_fits_costs_no_dram():
    bn = op("bn", "batchnorm", ("x",), 8 * MIB)
    assert gpu_l2.extra_passes(bn, 2.0, 40 * MIB) == 0.0
    assert gpu_l2.extra_passes(bn, 2.0, 6 * MIB) == 8 * MIB
    assert gpu_l2.extra_passes(bn, 2.0, None) == 8 * MIB


@pytest.mark.parametrize("device", ["v100", "a100", "h100"])
def test_a_batch_norm_that_fits_in_l2_moves_a_third_less(device):
    """Forward batch norm reads its input twice and writes its output: 3 passes from DRAM, 2
    where the input fits in the part's L2."""
    gpu = GPUModel(catalog.device(device))
    fits = op("bn", "batchnorm", ("x",), gpu.spec.l2_bytes // 2)
    spills = op("bn", "batchnorm", ("x",), gpu.spec.l2_bytes * 2)
    assert gpu.kernel_options(fits)[0].traffic_bytes == 2 * fits.out.nbytes
    assert gpu.kernel_options(spills)[0].traffic_bytes == 3 * spills.out.nbytes


def test_a100_keeps_what_a_v100_cannot():
    """A 16 MiB relu chain: the A100's 40 MB L2 serves each relu's read of the one before,
    the V100's 6 MB none; with the L2 the A100's chain takes less than its kernels alone."""
    ops = [op("r0", "relu", ("x",), 16 * MIB)] + [
        op(f"r{i}", "relu", (f"r{i - 1}",), 16 * MIB) for i in range(1, 8)]
    a100, v100 = GPUModel(catalog.device("a100")), GPUModel(catalog.device("v100"))
    assert hits(ops, a100.spec.l2_bytes)[1:] == [16 * MIB] * 7
    assert hits(ops, v100.spec.l2_bytes) == [0.0] * 8
    assert sum(a100.stream_times_s(ops)) < sum(a100.device_and_host_s(o)[0] for o in ops)
    v100.framework = None
    assert sum(v100.stream_times_s(ops)) == pytest.approx(sum(v100.op_time_s(o) for o in ops))


@settings(max_examples=12, deadline=None)
@given(st.sampled_from(["resnet18", "resnet50", "bert_base"]), st.sampled_from([1, 4, 16]),
       st.sampled_from(["v100", "a100", "h100"]))
def test_an_l2_never_makes_a_step_slower(network, batch, device):
    ops = list(lower_training(get(network, batch=batch)))
    spec = catalog.device(device)
    with_l2 = sum(GPUModel(spec).stream_times_s(ops))
    without = sum(GPUModel(replace(spec, l2_bytes=None)).stream_times_s(ops))
    assert with_l2 <= without * (1 + 1e-12)
