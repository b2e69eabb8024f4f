"""Supernet search space, sampler and merged (prefix-tree) graphs."""
import pytest

from workloads import supernet as S
from workloads import zoo
from workloads.graph import WorkloadError
from workloads.training import lower_training

CIFAR = S.SPOS_CIFAR


def test_sampler_is_seeded_and_in_range():
    a = S.sample_paths(CIFAR, 6, seed=3)
    assert a == S.sample_paths(CIFAR, 6, seed=3)
    assert a != S.sample_paths(CIFAR, 6, seed=4)
    assert all(len(p) == CIFAR.num_blocks and all(0 <= c < 4 for c in p) for p in a)


def test_spos_imagenet_subnets_have_spos_size():
    # SPOS reports ~320M multiply-adds for subnets of this space (Guo et al. 2020).
    assert S.SPOS_IMAGENET.num_blocks == 20
    for path in S.sample_paths(S.SPOS_IMAGENET, 3, seed=0):
        macs = S.subnet_graph(S.SPOS_IMAGENET, path).macs()
        assert 2.8e8 < macs < 3.7e8


@pytest.mark.parametrize("choices,words", [((0,) * 7 + (4,), "choices[7] = 4 is out of range"),
                                           ((0,) * 7, "has 7 entries"),
                                           ((0,) * 7 + (-1,), "out of range")])
def test_bad_choices_are_clear_errors(choices, words):
    with pytest.raises(WorkloadError, match=words.replace("[", r"\[").replace("]", r"\]")):
        S.subnet_graph(CIFAR, choices)
    with pytest.raises(WorkloadError):
        zoo.get("spos_cifar", choices=list(choices))


def test_shared_prefix_is_computed_once():
    a = (0, 1, 2, 3, 0, 1, 2, 3)
    b = (0, 1, 2, 3, 3, 3, 3, 3)          # shares blocks 0-3 with a
    merged = S.merged_graph(CIFAR, [a, b], batch=8)
    separate = S.merged_graph(CIFAR, [a, b], batch=8, merge=False)
    whole = S.merged_graph(CIFAR, [a], batch=8).flops()
    shared = sum(op.flops for op in S.merged_graph(CIFAR, [a], batch=8)
                 if op.attrs.get("supernet_unit") in ("stem", "b0c0", "b1c1", "b2c2", "b3c3"))
    assert separate.flops() - merged.flops() == pytest.approx(shared)
    assert whole > shared > 0


def test_paths_that_differ_at_block_0_share_only_the_stem():
    a, b = (0,) * 8, (1,) * 8
    merged = S.merged_graph(CIFAR, [a, b], batch=4)
    units = [op.attrs["supernet_unit"] for op in merged if op.kind == "conv2d"]
    assert units.count("stem") == 1 and units.count("head") == 2


def test_training_sums_gradients_at_the_fork():
    a = (0, 1, 2, 3, 0, 1, 2, 3)
    b = (0, 1, 2, 3, 3, 3, 3, 3)
    train = lower_training(S.merged_graph(CIFAR, [a, b], batch=4))
    losses = [op for op in train if op.kind == "softmax_xent"]
    grads = [op for op in train if op.kind == "softmax_xent_grad"]
    assert len(losses) == 2 and len(grads) == 2
    fork = [op for op in train if op.kind == "grad_accumulate"
            and S.unit_of(train, op) == "b3c3"]
    assert fork, "the last shared block's output gradient sums both branches"
    # a weight in the shared prefix has one gradient; the head (after the fork) one per path
    keys = [S.param_key(train, op) for op in train if op.phase == "backward" and op.params]
    assert keys.count("b0c0.dw") == 1 and keys.count("head.fc") == 2


def test_zoo_entries_carry_the_search_space():
    g = zoo.get("spos_cifar", batch=2, seed=1)
    assert S.search_space_of(g) is CIFAR
    assert g.meta["paths"] == (S.sample_paths(CIFAR, 1, seed=1)[0],)
    assert zoo.get("spos_supernet", batch=1, choices="0" * 20).meta["paths"] == ((0,) * 20,)
