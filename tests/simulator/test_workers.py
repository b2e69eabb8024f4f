"""stop_on_signals: SIGTERM and SIGHUP interrupt the block, except one the process ignores
(nohup's SIGHUP), and the handlers the block found are back after it."""
from __future__ import annotations

import signal
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from simulator.workers import Interrupted, stop_on_signals


@contextmanager
def _dispositions(**wanted) -> Iterator[None]:
    """Set signals (by name) to handlers for the test, then put back what was there."""
    previous = {sig: signal.signal(getattr(signal, sig), h) for sig, h in wanted.items()}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(getattr(signal, sig), handler)


@pytest.mark.parametrize("ignored", ["SIGHUP", "SIGTERM"])
def test_an_ignored_signal_stays_ignored_and_the_other_interrupts(ignored):
    other = "SIGTERM" if ignored == "SIGHUP" else "SIGHUP"
    with _dispositions(**{ignored: signal.SIG_IGN, other: signal.SIG_DFL}):
        with stop_on_signals():
            assert signal.getsignal(getattr(signal, ignored)) is signal.SIG_IGN
            handler = signal.getsignal(getattr(signal, other))
            assert callable(handler)
            with pytest.raises(Interrupted) as info:   # called, not delivered: nothing is sent
                handler(getattr(signal, other), None)
            assert info.value.signum == getattr(signal, other)
        assert signal.getsignal(getattr(signal, ignored)) is signal.SIG_IGN
        assert signal.getsignal(getattr(signal, other)) is signal.SIG_DFL
