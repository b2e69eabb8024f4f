"""Invariants of every zoo network (Hypothesis draws the network and the batch): the forward
graph is well formed, its parameters do not depend on the batch while its multiply-adds grow
with it in proportion, and the training lowering updates every parameter once and gives each
convolution and linear layer a backward pass of twice its forward multiply-adds. And the
graphs are the same byte for byte whatever PYTHONHASHSEED."""
import os
import subprocess
import sys

from hypothesis import given, settings
from hypothesis import strategies as st

from workloads import zoo
from workloads.training import lower_training

# the language models at a short sequence, which keeps the graphs small
SHORT = {"seq_len": 16}
TOKENS = {name for name in zoo.names() if len(zoo.info(name).input_shape) == 1}


def _get(name: str, batch: int):
    return zoo.get(name, batch=batch, **(SHORT if name in TOKENS else {}))


@settings(max_examples=25, deadline=None)
@given(name=st.sampled_from(zoo.names()), batch=st.integers(1, 3))
def test_any_network_at_any_batch(name, batch):
    g = _get(name, batch)
    g.validate()
    ops = {op.name for op in g}
    assert all(set(op.inputs) <= ops for op in g)   # every input is an op of the graph
    one = _get(name, 1)
    assert g.params() == one.params()
    assert g.macs() == batch * one.macs()
    train = lower_training(g)
    updated = sum(op.params for op in train.phase("update"))
    assert updated == g.params()
    layers = {op.name: op.macs for op in g if op.kind in ("conv2d", "linear")}
    passes = [op for op in train.phase("backward") if op.forward in layers
              and op.kind.endswith(("_grad_input", "_grad_weight"))]
    assert passes or not layers
    assert all(op.macs == layers[op.forward] for op in passes)


def _digest_script(names: list[str]) -> str:
    return (
        "import hashlib; from workloads import zoo\n"
        f"for n in {names!r}:\n"
        f"    g = zoo.get(n, batch=2, **({SHORT!r} if len(zoo.info(n).input_shape) == 1 "
        "else {}))\n"
        "    rows = [(op.name, op.kind, op.inputs, op.out.shape, sorted(op.attrs.items()),"
        " op.params, op.flops) for op in g]\n"
        "    print(n, hashlib.sha256(repr((rows, sorted(g.meta))).encode()).hexdigest())\n")


def test_graphs_are_the_same_whatever_the_hash_seed():
    names = ["densenet121", "efficientnet_b0", "shufflenet_v2_x1_0", "convnext_tiny",
             "swin_t", "inception_v4", "mistral_7b", "bert_large", "t5_small"]
    outs = {subprocess.run([sys.executable, "-c", _digest_script(names)], check=True,
                           capture_output=True, text=True,
                           env={**os.environ, "PYTHONHASHSEED": seed}).stdout
            for seed in ("0", "4242")}
    assert len(outs) == 1 and len(outs.pop().splitlines()) == len(names)
