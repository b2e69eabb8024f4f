"""validation.calibrate: the cases it replays and the resumable journal of their rounds."""
import json

import pytest

from validation.calibrate import journal
from validation.calibrate.calibration_nets import NETWORKS
from validation.calibrate.cases import DEFAULT_CASES, REFERENCE_CASE, calibration_cases, op_key
from workloads import zoo
from workloads.training import lower_training

HEADER = json.dumps({"dnnsim_journal": "calibration", "format": 1, "identity": None}) + "\n"


def write_partial(path, records, torn: str = "") -> None:
    """A partial file as calibration writes it: its header, whole lines, maybe a torn tail."""
    path.write_text(HEADER + "".join(json.dumps(r) + "\n" for r in records) + torn,
                    encoding="utf-8")


def test_calibration_cases_grid_and_synthetic_networks():
    cases = calibration_cases((("lenet5", 8),), grid=True, synthetic=False)
    assert cases == [("lenet5", 4), ("lenet5", 8), ("lenet5", 16)]
    full = calibration_cases()
    assert set(DEFAULT_CASES) <= set(full)
    assert {n for n, _ in full if n.startswith("grid_")} == set(NETWORKS)
    assert full == sorted(set(full))             # deterministic order, no repeats


def test_records_of_replay_take_the_median_round_and_dedupe():
    train = lower_training(zoo.get("resnet20", batch=2))
    ops = [op for op in train.topo() if not op.is_view]
    slow = {op.name: 3e-3 for op in ops}
    middle = {op.name: 2e-3 for op in ops}
    fast = {op.name: 1e-3 for op in ops}
    middle[ops[5].name] = 5e-3                  # one op slower in the median round
    recs = journal.records_of_replay("resnet20", train, [slow, fast, middle])
    assert len(recs) < len(ops)                 # repeated block shapes counted once
    by_key = {r["key"]: r for r in recs}
    assert by_key[op_key(ops[0])]["time_s"] == 2e-3
    assert by_key[op_key(ops[5])]["time_s"] > 2e-3    # from the median round, as it ran there
    assert by_key[op_key(ops[0])]["median_s"] == 2e-3
    assert all(r["sources"] == ["resnet20"] for r in recs)


def test_the_median_round_of_an_even_count_is_a_measured_round():
    rounds = [{"a": t} for t in (4.0, 1.0, 3.0, 2.0)]
    assert journal.median_round(rounds) == {"a": 2.0}
    assert journal.median_round(rounds[:1]) == {"a": 4.0}


def test_partial_file_resumes_and_ignores_a_torn_line(tmp_path):
    pytest.importorskip("torch")
    cases = [("lenet5", 2)]
    partial = tmp_path / "p.jsonl"
    train = lower_training(zoo.get("lenet5", batch=2))
    fake = {op.name: 123.0 for op in train.topo() if not op.is_view}
    rec = {"key": journal.round_id("lenet5", 2, 0), "graph": journal.graph_fingerprint(train),
           "times": fake}
    # round 1 was measured on another version of the graph: stale, measured again
    stale = {"key": journal.round_id("lenet5", 2, 1), "graph": "0123456789abcdef",
             "times": {"conv1": 1.0}}
    write_partial(partial, [stale, rec], torn='{"key": "torn')
    recs = journal.measure_cases(cases, partial, rounds=2, progress=False, steps_of=set(cases))
    done = journal.read_partial(partial)
    assert set(done) == {journal.round_id("lenet5", 2, 0), journal.round_id("lenet5", 2, 1)}
    assert done[journal.round_id("lenet5", 2, 0)]["times"] == fake    # kept, not measured again
    assert "step_s" in done[journal.round_id("lenet5", 2, 1)]
    assert all(0 < r["time_s"] < 1 for r in recs)  # the measured round is the faster one
    steps = journal.measured_steps(partial, cases)
    assert [(s["network"], s["batch"]) for s in steps] == cases and steps[0]["measured_s"] > 0


def test_modules_are_timed_in_the_rounds_and_never_replayed(tmp_path):
    pytest.importorskip("torch")
    from validation.calibrate import heldout
    partial = tmp_path / "p.jsonl"
    timers = heldout.step_timers(cases=[("mlp", 4)], reps=1)
    recs = journal.measure_cases([("lenet5", 2)], partial, rounds=2, progress=False,
                             module_steps=timers)
    assert {r["sources"][0] for r in recs} == {"lenet5"}      # only replays make points
    done = journal.read_partial(partial)
    assert "times" not in done[journal.round_id("mlp", 4, 1)]
    steps = journal.measured_steps(partial, [("mlp", 4)])
    assert steps[0]["network"] == "mlp" and steps[0]["measured_s"] > 0


def test_a_median_is_settled_when_another_round_confirms_it():
    def rnd(replay_s, steps=None):
        return {"times": {"a": replay_s}, **({"step_s": steps} if steps else {})}
    assert not journal.is_settled([])
    assert not journal.is_settled([rnd(1.0)])                        # one round confirms nothing
    assert journal.is_settled([rnd(1.0), rnd(1.5), rnd(1.02)])       # median 1.02, 1.0 below
    assert journal.is_settled([rnd(1.5), rnd(1.0), rnd(1.52)])       # median 1.5, 1.52 above
    assert not journal.is_settled([rnd(1.0), rnd(1.1)])
    assert not journal.is_settled([rnd(1.0), rnd(1.2), rnd(1.4)])    # a spread, no agreement
    # a step's median needs its own confirmation, from another round
    assert not journal.is_settled([rnd(1.0, [0.5, 0.51]), rnd(1.01, [0.7, 0.8])])
    assert journal.is_settled([rnd(1.0, [0.5, 0.53]), rnd(1.01, [0.55, 0.5])])
    assert journal.is_settled([{"step_s": [2.0]}, {"step_s": [2.05]}])   # a module: steps only


def test_case_rounds_are_in_round_order_and_of_that_case_only():
    done = {journal.round_id("lenet5", 2, r): {"r": r} for r in (10, 2, 0, 1)}
    done[journal.round_id("lenet5", 20, 0)] = {"r": "other batch"}
    assert [x["r"] for x in journal.case_rounds(done, ("lenet5", 2))] == [0, 1, 2, 10]


def test_unsettled_cases_get_more_rounds_up_to_the_maximum(tmp_path):
    pytest.importorskip("torch")
    partial = tmp_path / "p.jsonl"
    cases = [("lenet5", 2), ("lenet5", 4)]
    lines = []
    for (name, batch), times in zip(cases, ((1.0, 1.01), (1.0, 2.0)), strict=True):  # settled; not
        train = lower_training(zoo.get(name, batch=batch))
        for r, t in enumerate(times):
            lines.append({"key": journal.round_id(name, batch, r),
                          "graph": journal.graph_fingerprint(train),
                          "times": {op.name: t for op in train.topo() if not op.is_view}})
    write_partial(partial, lines)
    journal.measure_cases(cases, partial, rounds=2, progress=False, max_rounds=3)
    done = journal.read_partial(partial)
    assert journal.round_id("lenet5", 4, 2) in done                # measured: a real, fast round
    assert journal.round_id("lenet5", 2, 2) not in done            # settled: no third round
    assert journal.round_id("lenet5", 4, 3) not in done            # never past the maximum


def test_reference_is_a_calibrated_case_and_read_from_the_rounds(tmp_path):
    assert REFERENCE_CASE in DEFAULT_CASES          # replayed by every calibration
    partial = tmp_path / "p.jsonl"
    lines = [{"key": journal.round_id(*REFERENCE_CASE, r), "times": {"a": t, "b": 0.01}}
             for r, t in enumerate((0.05, 0.03, 0.04))]
    write_partial(partial, lines)
    assert journal.reference_from_rounds(partial) == pytest.approx(0.05)   # the median
    assert journal.reference_from_rounds(tmp_path / "none.jsonl") is None


def test_a_resumed_run_keeps_the_step_overhead_it_measured(tmp_path, monkeypatch):
    partial = tmp_path / "p.jsonl"
    write_partial(partial, [], torn='{"key": "resnet20@16#0", "graph": "x", "times": {"a": 1.0}}')
    measured = []
    monkeypatch.setattr(journal, "measure_overhead",
                        lambda device, rounds: measured.append(rounds) or 3e-6)
    assert journal.overhead_from_partial(partial, "cpu", rounds=5) == 3e-6
    monkeypatch.setattr(journal, "measure_overhead", lambda device, rounds: 9e-6)
    assert journal.overhead_from_partial(partial, "cpu") == 3e-6      # recorded, not measured
    # the torn line (its write never finished) is cut and kept beside the file
    assert measured == [5] and list(journal.read_partial(partial)) == [journal.OVERHEAD_KEY]
    # a record of another overhead network (an older dnnsim) is measured again
    lines = partial.read_text().splitlines()
    partial.write_text("\n".join([lines[0], lines[1].replace('"graph":"', '"graph":"old')])
                       + "\n")
    assert journal.overhead_from_partial(partial, "cpu") == 9e-6


def test_a_partial_path_that_is_not_a_calibration_journal_is_refused_untouched(tmp_path):
    from simulator.journal import JournalError
    notes = tmp_path / "notes.jsonl"
    notes.write_text('{"key": "mine", "times": {}}')      # one line, no newline, no header
    with pytest.raises(JournalError, match="left as it is"):
        journal.read_partial(notes)
    with pytest.raises(JournalError, match="left as it is"):
        journal.overhead_from_partial(notes, "cpu")
    assert notes.read_text() == '{"key": "mine", "times": {}}'


def test_a_torn_tail_is_cut_and_kept_beside_the_partial_file(tmp_path, monkeypatch):
    partial = tmp_path / "p.jsonl"
    write_partial(partial, [{"key": "a@1#0", "times": {"x": 1.0}}], torn='{"key": "b@1')
    monkeypatch.setattr(journal, "measure_overhead", lambda device, rounds: 2e-6)
    journal.overhead_from_partial(partial, "cpu")
    assert set(journal.read_partial(partial)) == {"a@1#0", journal.OVERHEAD_KEY}
    assert (tmp_path / "p.jsonl.torn").read_text() == '{"key": "b@1\n'
