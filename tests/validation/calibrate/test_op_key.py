"""A measured op is found again by its key (validation/calibrate/cases.op_key): the kernel's
kind, shapes and attributes, not how a framework issues it around the kernel."""
import dataclasses

from validation.calibrate.cases import op_key
from workloads.builder import GraphBuilder
from workloads.training import lower_training


def small_train(optimizer: str, fused: bool = False):
    b = GraphBuilder("small", (16,), batch=4)
    b.linear(b.relu(b.linear(b.input(), 16, name="fc0")), 10, name="fc1")
    return lower_training(b.build(), optimizer, fused_optimizer=fused)


def test_an_update_keeps_its_key_whatever_the_step_around_it():
    keys = {op_key(small_train(o, fused).op("fc1.update"))
            for o in ("sgd", "sgd-momentum", "adam") for fused in (False, True)}
    assert len(keys) == 1


def test_a_strided_gradient_slice_keeps_the_kernel_s_key_and_other_attributes_do_not():
    op = small_train("sgd").op("fc1.grad_input")
    assert op_key(dataclasses.replace(op, attrs={**op.attrs, "dy_strided": True})) == op_key(op)
    assert op_key(dataclasses.replace(op, attrs={**op.attrs, "groups": 2})) != op_key(op)
