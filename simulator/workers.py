"""Worker processes that die with the run that started them, and signals that end a run.

`process_pool(n)` is a ProcessPoolExecutor whose workers each watch a pipe from the parent:
the parent holds the only write end, so when it exits (normally, by a signal, or SIGKILLed)
the pipe closes and every worker exits at once, instead of finishing its points or blocking
forever on a queue nobody writes to. A parent that stops a run on purpose closes the pipe
itself (`ParentPipe.close`). Workers also run their numeric libraries on one thread: a
simulation process is one of many, and spinning BLAS threads on a busy machine slowed runs
10-50x.

`stop_on_signals()` turns SIGTERM and SIGHUP into `Interrupted` (a KeyboardInterrupt, as
SIGINT already is), so the code that holds a pool cleans it up on every one of them. A signal
that the run was started with ignored stays ignored (SIGHUP under nohup; SIGINT in a
background job of a non-interactive shell, which Python itself leaves ignored).
"""
from __future__ import annotations

import os
import signal
import threading
from contextlib import contextmanager, suppress
from typing import Iterator

# The numeric libraries read these when they load: set before a worker imports them.
SINGLE_THREAD_ENV = {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


class Interrupted(KeyboardInterrupt):
    """The run was stopped by a signal; `signum` says which."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


@contextmanager
def stop_on_signals() -> Iterator[None]:
    """Within the block, SIGTERM and SIGHUP raise Interrupted in the main thread, each unless
    it is ignored as the block starts (outside the main thread, or where signals cannot be
    set, the block runs as it is)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def raise_interrupted(signum, _frame):
        raise Interrupted(signum)

    previous = {}
    for sig in (signal.SIGTERM, signal.SIGHUP):
        if signal.getsignal(sig) is not signal.SIG_IGN:   # nohup's SIGHUP stays ignored
            previous[sig] = signal.signal(sig, raise_interrupted)
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


class ParentPipe:
    """The pipe the workers watch: its read end goes to each worker, the write end stays here."""

    def __init__(self, ctx) -> None:
        self.read_end, self.write_end = ctx.Pipe(duplex=False)

    def close(self) -> None:
        """Tell every worker to exit now (also what the kernel does when this process dies)."""
        for end in (self.write_end, self.read_end):
            with suppress(OSError):
                end.close()


def single_threaded_numerics() -> None:
    """Numeric libraries (BLAS, OpenMP) on one thread in this process, for the rest of it: a
    simulation process is one of several, and spinning library threads on a busy machine slow
    it 10-50x. Measurement (calibrate) sets its own thread count and never calls this."""
    for key, value in SINGLE_THREAD_ENV.items():
        os.environ[key] = value
    try:
        from threadpoolctl import threadpool_limits
        threadpool_limits(1)
    except ImportError:
        pass


def _worker_start(parent_pipe) -> None:
    """In each worker: one thread for numeric libraries, and a watcher that exits the
    process as soon as the parent's end of the pipe closes."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)   # Ctrl-C is the parent's to handle
    single_threaded_numerics()

    def watch() -> None:
        with suppress(EOFError, OSError):
            parent_pipe.recv_bytes()   # nothing is ever sent: this returns only at EOF
        os._exit(1)

    threading.Thread(target=watch, name="dnnsim-parent-watch", daemon=True).start()


def process_pool(workers: int):
    """(ProcessPoolExecutor, ParentPipe). Workers are forked from a clean server process: not
    plain fork, since forking a process that runs threads (a Dask client, a notebook kernel,
    a progress bar) can copy a held lock and hang the child. The server preloads the
    simulator, so workers start in milliseconds. Where forkserver does not exist: spawn."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor
    forkserver = "forkserver" in multiprocessing.get_all_start_methods()
    ctx = multiprocessing.get_context("forkserver" if forkserver else "spawn")
    if forkserver:
        ctx.set_forkserver_preload(["simulator.sweep", "simulator.api"])
    pipe = ParentPipe(ctx)
    pool = ProcessPoolExecutor(max_workers=workers, mp_context=ctx, initializer=_worker_start,
                               initargs=(pipe.read_end,))
    return pool, pipe


def stop_pool(pool, pipe: ParentPipe) -> None:
    """End a pool now: queued work cancelled, the workers told to exit (they do within
    milliseconds, whatever point they are simulating)."""
    pipe.close()
    pool.shutdown(wait=True, cancel_futures=True)


def cpu_count() -> int:
    """The CPUs this process may run on (its affinity), not the machine's total."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:   # not Linux
        return max(1, os.cpu_count() or 1)
