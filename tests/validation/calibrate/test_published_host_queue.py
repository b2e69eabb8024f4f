"""The fit scores a row with the launch queue the model runs (hwmodels/gpu.py
stream_times_s): published_terms' vectorised queue gives each row, or each phase a row
publishes, the seconds pg.phase_seconds simulates."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hwmodels.gpu import builtin_families, builtin_frameworks
from validation.calibrate import published_gpu as pg
from validation.calibrate import published_terms as pt

# a Torch7 row at batch 1 (the host binds, each phase its own queue), a Torch7 row at batch 16
# and a PyTorch step (one queue from the forward through the update)
ROWS = ("S258", "S252", "S237", "S003")


def test_the_fit_scores_rows_as_the_model_simulates_them():
    table = pg.read_network_rows(f"{pg.PUBLISHED_DIR}/single_gpu.csv")
    rows = [r for r in table.rows if r.row_id in ROWS]
    assert len(rows) == len(ROWS)
    terms = pt.network_terms(rows)
    frameworks = builtin_frameworks()
    terms.set_frameworks({f: c.host_overhead_s for f, c in frameworks.items()},
                         {f: c.stream_memory for f, c in frameworks.items()})
    for row in rows:
        predicted = terms.predict_s(builtin_families()[pg.architecture(row.gpu)])
        seconds = pg.phase_seconds(row)
        mine = [i for i, label in enumerate(terms.labels) if label.split(":")[0] == row.row_id]
        want = ([seconds["forward"], seconds["backward"]] if row.phase_s is not None
                else [sum(seconds.values())])
        assert predicted[mine] == pytest.approx(want, rel=1e-9)


SECONDS = st.floats(min_value=0.0, max_value=1e-3, allow_nan=False)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(SECONDS, SECONDS, st.booleans()), min_size=1, max_size=25))
def test_a_stretch_is_the_step_by_step_queue(items):
    """queued_stretch_s against the queue run op by op: the GPU starts each op when the host
    has issued it and the op before is done; a new stretch starts with an empty queue."""
    stretch = np.cumsum([0] + [int(new) for _, _, new in items[1:]])
    want = np.zeros(stretch[-1] + 1)
    host_done = gpu_done = started = 0.0
    for i, ((gpu_s, host_s, _), s) in enumerate(zip(items, stretch, strict=True)):
        if i and s != stretch[i - 1]:        # the host waits for the GPU
            host_done = started = gpu_done
        host_done += host_s
        gpu_done = max(host_done, gpu_done) + gpu_s
        want[s] = gpu_done - started
    got = pt.queued_stretch_s(np.array([g for g, _, _ in items]),
                              np.array([h for _, h, _ in items]), stretch)
    assert got == pytest.approx(want, rel=1e-9, abs=1e-15)
