"""`make load --profile`: each gunicorn worker profiles the CPU time of all its threads.

scripts/load.py puts this folder on PYTHONPATH and names a folder in LOAD_PROFILE_DIR for
the servers it starts; Python imports this module in every process they run, and it does
nothing but in a gunicorn worker. There, every thread runs under its own cProfile with
the thread's CPU clock as its timer, so what waits (on vcita, a lock, the disk) costs
nothing. SIGPROF starts the count afresh (once the workers have booted); a second SIGPROF
writes the worker's profile to LOAD_PROFILE_DIR/<pid>.prof, for pstats.
"""

import cProfile
import os
import pstats
import signal
import sys
import threading
import time

PROFILE_DIR = os.environ.get("LOAD_PROFILE_DIR")


def _in_a_gunicorn_worker() -> None:
    """Profile each thread of this process from now on; SIGPROF resets, then writes."""
    profiles: list[cProfile.Profile] = []
    run = threading.Thread.run

    def profiled_run(thread: threading.Thread) -> None:
        profile = cProfile.Profile(time.thread_time)
        profiles.append(profile)
        profile.enable()
        try:
            run(thread)
        finally:
            profile.disable()

    threading.Thread.run = profiled_run  # type: ignore[method-assign]
    main = cProfile.Profile(time.thread_time)
    profiles.append(main)
    main.enable()
    started = []

    def on_sigprof(signum, frame) -> None:
        if not started:  # the first: the flows start now
            started.append(True)
            for profile in profiles:
                profile.clear()
            return
        path = f"{PROFILE_DIR}/{os.getpid()}.prof"
        pstats.Stats(*(_Snapshot(profile) for profile in profiles)).dump_stats(f"{path}.part")
        os.replace(f"{path}.part", path)

    signal.signal(signal.SIGPROF, on_sigprof)


class _Snapshot:
    """A thread's profile as it stands, for pstats, without stopping it in its thread."""

    def __init__(self, profile: cProfile.Profile) -> None:
        self.profile = profile

    def create_stats(self) -> None:
        self.profile.snapshot_stats()
        self.stats = self.profile.stats


def _after_fork() -> None:
    # gunicorn's master forks its workers; run from `python -m gunicorn`, its argv[0] is
    # gunicorn's own __main__.py.
    if "gunicorn" in sys.argv[0]:
        _in_a_gunicorn_worker()


if PROFILE_DIR:
    os.register_at_fork(after_in_child=_after_fork)
