"""The framework's host issues kernels ahead of the GPU (hwmodels/gpu.py stream_times_s):
launches are asynchronous, so over a stretch of ops the GPU waits for the host only where the
host has fallen behind, and a framework that waits for the GPU at each phase's end
(PHASE_SYNC_FRAMEWORKS) starts each phase with an empty queue."""
import importlib.resources

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hwmodels import catalog, gpu_memory
from hwmodels.gpu import GPUModel
from hwmodels.launch_queue import issue_s
from hwmodels.specs import HardwareError
from workloads.graph import Op, TensorSpec


def given_times(op: Op) -> tuple[float, float]:
    return op.attrs["gpu_s"], op.attrs["host_s"]


def timed_ops(times: list[tuple[float, float]], phases: list[str] | None = None) -> list[Op]:
    spec = TensorSpec((1024,), 4)
    phases = phases or ["forward"] * len(times)
    return [Op(f"op{i}", "relu", ("x",), (spec,), spec, {"gpu_s": g, "host_s": h}, phase=p)
            for i, ((g, h), p) in enumerate(zip(times, phases, strict=True))]


def timed(framework: str = "pytorch") -> GPUModel:
    """A V100 whose ops take the (GPU, host) seconds their `attrs` name (set on the instance:
    a subclass would register itself as the GPU model class)."""
    model = GPUModel(catalog.device("v100"))
    model.framework = framework
    model.device_and_host_s = lambda op, l2_hit_bytes=0.0: given_times(op)  # type: ignore
    model.op_time_s = lambda op, step_bytes=None: max(given_times(op))  # type: ignore
    return model


SECONDS = st.floats(min_value=0.0, max_value=1e-3, allow_nan=False)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(SECONDS, SECONDS), min_size=1, max_size=30))
def test_the_queue_lies_between_the_busier_side_and_the_per_op_maximum(times):
    """The host and the GPU each do all their work, so the stretch takes at least the larger
    of their sums; running ahead never makes it longer than each op issued alone, but for the
    one op whose issue the GPU waits for with nothing to run (at most the smaller of its two
    times)."""
    gpu_s, host_s = (sum(t[i] for t in times) for i in (0, 1))
    total_s = sum(timed().stream_times_s(timed_ops(times)))
    assert total_s >= max(gpu_s, host_s) * (1 - 1e-9)
    alone_s = sum(max(g, h) for g, h in times) + max(min(g, h) for g, h in times)
    assert total_s <= alone_s * (1 + 1e-9) + 1e-15
    # each op takes at least its GPU time: the GPU never runs two at once
    for op_s, (g, _) in zip(timed().stream_times_s(timed_ops(times)), times, strict=True):
        assert op_s >= g * (1 - 1e-9) - 1e-15     # a difference of sums: rounding


def test_a_long_kernel_hides_the_host_time_of_the_small_ones_after_it():
    """One 1 ms kernel then ten of 1 us, each 20 us to issue: the host issues all ten while
    the long kernel runs, so the step is the first issue, the kernels, nothing more; issued
    one at a time they would take 20 us each."""
    times = [(1e-3, 20e-6)] + [(1e-6, 20e-6)] * 10
    assert sum(timed().stream_times_s(timed_ops(times))) == pytest.approx(20e-6 + 1e-3 + 10e-6)
    assert sum(max(g, h) for g, h in times) == pytest.approx(1e-3 + 10 * 20e-6)


def test_small_kernels_alone_wait_for_the_host():
    times = [(1e-6, 20e-6)] * 10
    assert sum(timed().stream_times_s(timed_ops(times))) == pytest.approx(10 * 20e-6 + 1e-6)


def test_torch7_waits_for_the_gpu_at_each_phase_end():
    """A long forward kernel no longer hides the backward's host time where the framework
    synchronises between the phases (Torch7's loss comes back as a Lua number)."""
    times = [(1e-3, 20e-6)] + [(1e-6, 20e-6)] * 10
    ops = timed_ops(times, ["forward"] + ["backward"] * 10)
    assert sum(timed("pytorch").stream_times_s(ops)) == pytest.approx(20e-6 + 1e-3 + 10e-6)
    torch7 = timed("torch7").stream_times_s(ops)
    assert sum(torch7) == pytest.approx(20e-6 + 1e-3 + 10 * 20e-6 + 1e-6)
    assert sum(torch7[1:]) == pytest.approx(sum(timed("torch7").stream_times_s(ops[1:])))


def test_real_ops_queue_on_a_real_model():
    """On the V100's kernel model, a tiny op's host time binds alone and hides behind a
    large convolution before it."""
    from workloads import zoo
    from workloads.training import lower_training
    ops = [op for op in lower_training(zoo.get("resnet18", batch=16)) if op.phase == "forward"]
    gpu = GPUModel(catalog.device("v100"))
    stream = gpu.stream_times_s(ops)
    alone = [gpu.op_time_s(op) for op in ops]
    assert sum(stream) < sum(alone)
    assert sum(stream) >= sum(gpu.device_and_host_s(op)[0] for op in ops) * (1 - 1e-12)


def test_ops_issued_in_two_calls_queue_as_in_one():
    """A policy that emits a device's ops in parts (forward and backward, then the update)
    passes the queue's state along: the host's lead carries over, to the last bit."""
    times = [(1e-3, 20e-6)] + [(1e-6, 20e-6)] * 10 + [(5e-6, 20e-6)] * 3
    ops = timed_ops(times)
    whole = timed().stream_times_s(ops)
    queue: dict = {}
    parts = timed().stream_times_s(ops[:11], queue=queue)
    parts += timed().stream_times_s(ops[11:], queue=queue)
    assert parts == whole
    cold = timed().stream_times_s(ops[11:])
    assert sum(cold) > sum(whole[11:])         # started afresh, the first issue is not hidden


@pytest.mark.parametrize("kernels, framework_ops", [(1, 1), (4, 1), (5, 2), (3, 3)])
def test_an_op_pays_the_frameworks_time_per_framework_op_and_a_launch_per_further_kernel(
        kernels, framework_ops):
    assert issue_s(kernels, framework_ops, 20e-6, 4e-6) == pytest.approx(
        framework_ops * 20e-6 + (kernels - framework_ops) * 4e-6)


def test_the_bare_launch_comes_from_the_runtime_file_with_its_source():
    launch_s = gpu_memory.kernel_launch_s()
    assert 1e-6 <= launch_s <= 1e-5          # cudaLaunchKernel: a few microseconds
    text = (importlib.resources.files("hwmodels.catalog")
            .joinpath(gpu_memory.RUNTIME_FILE).read_text(encoding="utf-8"))
    assert "CUDA Graphs" in text


@pytest.mark.parametrize("bad", [-1e-6, "3us", True, 1.0])
def test_a_bad_bare_launch_is_an_error_naming_it(monkeypatch, bad):
    data = dict(gpu_memory.runtime_data(), launch={"kernel_launch_s": bad})
    monkeypatch.setattr(gpu_memory, "runtime_data", lambda: data)
    with pytest.raises(HardwareError, match=r"\[launch\] kernel_launch_s"):
        gpu_memory.kernel_launch_s()
