"""A measured op is found again by its key (validation/calibrate/cases.op_key): the kernel's
kind, shapes and attributes (an update's optimizer among them), not how a framework issues it
around the kernel."""
import dataclasses

from validation.calibrate import calibration_nets
from validation.calibrate.cases import find_measured, op_key, op_keys
from validation.calibrate.profile_build import read_ops_csv
from validation.paths import MEASURED
from workloads.builder import GraphBuilder
from workloads.training import lower_training


def small_train(optimizer: str, fused: bool = False):
    b = GraphBuilder("small", (16,), batch=4)
    b.linear(b.relu(b.linear(b.input(), 16, name="fc0")), 10, name="fc1")
    return lower_training(b.build(), optimizer, fused_optimizer=fused)


def test_an_update_is_keyed_by_its_optimizer_not_by_the_step_around_it():
    keys = {o: {op_key(small_train(o, fused).op("fc1.update")) for fused in (False, True)}
            for o in ("sgd", "sgd-momentum", "adam")}
    assert all(len(k) == 1 for k in keys.values())   # fused or not, one kernel
    assert len(set.union(*keys.values())) == 3          # each optimizer its own
    # the step's tensor count (what other layers the multi-tensor call shares) is left out
    adam = small_train("adam").op("fc1.update")
    assert op_key(dataclasses.replace(adam, attrs={**adam.attrs, "step_tensors": 99})) \
        in keys["adam"]


def test_an_update_falls_back_to_a_measurement_that_names_no_optimizer():
    sgd, adam = (small_train(o).op("fc1.update") for o in ("sgd", "adam"))
    legacy = op_keys(sgd)[-1]
    assert op_keys(adam)[-1] == legacy and len(op_keys(adam)) == 2
    assert find_measured(adam, {legacy: 1.0}) == 1.0
    # a measurement of its own optimizer wins; another optimizer's is never taken
    assert find_measured(adam, {legacy: 1.0, op_key(adam): 2.0}) == 2.0
    assert find_measured(adam, {op_key(sgd): 1.0}) is None
    assert op_keys(small_train("sgd").op("fc1")) == (op_key(small_train("sgd").op("fc1")),)


def test_the_committed_measurements_are_found_for_the_step_they_were_taken_with():
    """The committed CPU ops name no optimizer: the default step's updates (SGD with momentum,
    what calibrate replays) find them, with the same flops and bytes."""
    records = {r["key"]: r for r in read_ops_csv(f"{MEASURED}/cpu_ops.csv")}
    times = {k: r["time_s"] for k, r in records.items()}
    graph = lower_training(calibration_nets.get("grid_k7", 1))
    updates = [op for op in graph.topo() if op.phase == "update"]
    assert updates and all(find_measured(op, times) is not None for op in updates)
    for op in updates:
        rec = records[op_keys(op)[-1]]
        assert (rec["flops"], rec["bytes"]) == (op.flops, op.bytes_moved)


def test_a_strided_gradient_slice_keeps_the_kernel_s_key_and_other_attributes_do_not():
    op = small_train("sgd").op("fc1.grad_input")
    assert op_key(dataclasses.replace(op, attrs={**op.attrs, "dy_strided": True})) == op_key(op)
    assert op_key(dataclasses.replace(op, attrs={**op.attrs, "groups": 2})) != op_key(op)
