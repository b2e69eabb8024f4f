"""Resources that can never make a task wait are left out of the run (engine_reading), and the
loop's short paths (one resource, no memory; one resource, bytes on one device) stand for its
general path: on random graphs, with shared ports, priorities, zero durations and memory
that runs short, the schedule, the memory timeline and any out-of-memory stop are the same
byte for byte as a run that keeps every resource and gives every task a second one, which
sends every task down the general path."""
from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from simulator import engine
from simulator.engine_log import RunLog
from simulator.engine_reading import MOST_PORTS_COMPARED, binding_resources
from simulator.tasks import Task, TaskGraph

DEVICES = ("m0", "m1")
NEVER_FULL = 10 ** 9   # a private resource's capacity: it never binds


@st.composite
def contended_graphs(draw):
    """Tasks hold one of a few resource tuples (so some resources are always held together
    with others, as a transfer's ports are), with priorities, zero durations, allocations on
    one or two devices and frees; the devices' capacities may be short."""
    names = [f"r{i}" for i in range(draw(st.integers(1, 5)))]
    capacities = {r: draw(st.integers(1, 3)) for r in names}
    tuples = draw(st.lists(st.lists(st.sampled_from(names), min_size=1, max_size=3,
                                    unique=True).map(tuple), min_size=1, max_size=4))
    tg = TaskGraph("contended")
    for i in range(draw(st.integers(1, 30))):
        deps = draw(st.lists(st.integers(0, i - 1), max_size=3, unique=True)) if i else []
        alloc = {m: draw(st.integers(0, 30)) for m in DEVICES if draw(st.booleans())}
        free = {m: b for m, b in alloc.items() if draw(st.booleans())}
        tg.add(Task(f"t{i}", draw(st.sampled_from(tuples)),
                    draw(st.sampled_from([0.0, 0.5, 1.0, 1.5, 3.0])),
                    tuple(f"t{d}" for d in deps), priority=draw(st.integers(-1, 1)),
                    alloc=alloc, free=free))
    memory = {m: draw(st.integers(20, 120)) for m in DEVICES if draw(st.booleans())}
    baseline = {m: draw(st.integers(0, 10)) for m in DEVICES}
    return tg, capacities, memory, baseline, draw(st.booleans())


def _with_private_resources(tg: TaskGraph) -> TaskGraph:
    """The same graph, each task also holding a resource of its own that never fills."""
    out = TaskGraph(tg.name)
    for t in tg:
        out.add(Task(t.name, (*t.resources, f"own.{t.name}"), t.duration_s, t.deps,
                     t.priority, dict(t.alloc), dict(t.free)))
    return out


def _outcome(log: RunLog) -> str:
    return repr((log.start_s, log.end_s, sorted(log.memory_timeline.items()),
                 sorted(log.peak_memory_bytes.items()), log.oom, log.completed))


@settings(max_examples=300, deadline=None)
@given(contended_graphs())
def test_short_paths_and_left_out_resources_change_nothing(case):
    tg, capacities, memory, baseline, enforce = case
    fast = engine.run(tg, capacities, memory, memory_baseline_bytes=baseline,
                      enforce_memory=enforce)
    private = _with_private_resources(tg)
    every = {**capacities, **{f"own.{t.name}": NEVER_FULL for t in tg}}
    general = engine._Run(private, every, dict(memory), dict(baseline), enforce,
                          every_resource=True).go()
    assert _outcome(fast) == _outcome(general)


@settings(max_examples=200, deadline=None)
@given(contended_graphs())
def test_every_resource_left_out_is_dominated_by_one_kept_beside_it(case):
    tg, capacities, _, _, _ = case
    tuples = [t.resources for t in tg]
    kept = binding_resources(tuples, capacities)
    held = {r for rs in tuples for r in rs}
    stays = {r for rs in kept.values() for r in rs}
    for y in held - stays:
        holders = [rs for rs in tuples if y in rs]
        assert any(all(x in rs for rs in holders) and capacities[x] <= capacities[y]
                   for x in stays), y
    for rs, left in kept.items():
        assert left and set(left) <= set(rs) and [r for r in rs if r in left] == list(left)


def test_a_ring_on_one_switch_keeps_one_port_of_each_send_receive_pair():
    """gpu k sends to k+1 only: its send port and k+1's receive port have the same holders."""
    tuples = [(f"gpu{k}.tx", f"gpu{(k + 1) % 4}.rx") for k in range(4)] * 3
    capacities = {r: 1 for rs in tuples for r in rs}
    kept = binding_resources(tuples, capacities)
    assert all(len(left) == 1 for left in kept.values())
    assert kept[("gpu0.tx", "gpu1.rx")] == ("gpu1.rx",)   # the first by name goes


def test_a_port_shared_by_two_pairs_and_a_smaller_capacity_stay():
    # gpu0.tx serves two receivers: neither pair's ports go; a port with less capacity than
    # the one beside it binds first and stays
    tuples = [("gpu0.tx", "gpu1.rx"), ("gpu0.tx", "gpu2.rx"), ("a", "b")]
    capacities = {"gpu0.tx": 1, "gpu1.rx": 1, "gpu2.rx": 1, "a": 2, "b": 1}
    kept = binding_resources(tuples, capacities)
    assert kept[("gpu0.tx", "gpu1.rx")] == ("gpu0.tx",)
    assert kept[("gpu0.tx", "gpu2.rx")] == ("gpu0.tx",)
    assert kept[("a", "b")] == ("b",)


def test_a_resource_named_twice_in_a_tuple_stays():
    kept = binding_resources([("r", "r", "s"), ("s",)], {"r": 2, "s": 1})
    assert kept[("r", "r", "s")] == ("r", "r", "s")


def test_the_ports_of_a_task_holding_many_stay_beside_a_pair_that_goes():
    # a flow-level collective holds every port at once: its tuple is left as it is
    many = tuple(f"p{k}" for k in range(MOST_PORTS_COMPARED + 1))
    pair = ("x.tx", "y.rx")
    kept = binding_resources([many, pair, pair], {r: 1 for r in (*many, *pair)})
    assert kept[many] == many and kept[pair] == ("y.rx",)
