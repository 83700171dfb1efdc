"""Ctrl-C held back to a safe point: it is recorded, raised there, and never lost."""
from __future__ import annotations

import os
import signal
import threading

import pytest

from gitmodel import interrupts


def ctrl_c() -> None:
    os.kill(os.getpid(), signal.SIGINT)


def test_sigint_inside_the_block_is_raised_on_leaving_it():
    reached = []
    with pytest.raises(KeyboardInterrupt):
        with interrupts.deferred() as interrupt:
            ctrl_c()
            reached.append(interrupt.pending)   # the code after the signal still runs
    assert reached == [True]
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_check_raises_at_the_safe_point():
    done = []
    with pytest.raises(KeyboardInterrupt):
        with interrupts.deferred():
            for i in range(3):
                if i == 1:
                    ctrl_c()
                interrupts.check()
                done.append(i)
    assert done == [0]


def test_without_sigint_nothing_happens():
    with interrupts.deferred() as interrupt:
        interrupts.check()
    assert not interrupt.pending


def test_not_raised_on_exit_when_asked_but_seen_by_the_enclosing_block():
    with pytest.raises(KeyboardInterrupt):
        with interrupts.deferred() as outer:
            with interrupts.deferred(raise_on_exit=False) as inner:
                ctrl_c()
            assert inner.pending and outer.pending


def test_an_error_in_the_block_is_not_replaced_by_the_interrupt():
    with pytest.raises(ValueError):
        with interrupts.deferred():
            ctrl_c()
            raise ValueError("the real failure")


def test_an_ignored_sigint_stays_ignored():
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        with interrupts.deferred() as interrupt:
            ctrl_c()
        assert not interrupt.pending
        assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
    finally:
        signal.signal(signal.SIGINT, previous)


def test_outside_the_main_thread_the_block_runs_as_it_is():
    seen = []

    def work():
        with interrupts.deferred() as interrupt:
            seen.append(interrupt.pending)

    t = threading.Thread(target=work)
    t.start()
    t.join()
    assert seen == [False]


def test_the_ctrl_c_tests_hold_in_a_suite_started_as_a_background_job():
    """A shell starts a background job with SIGINT ignored: the suite must still see Ctrl-C as a terminal
    sends it, or every test above fails there."""
    import subprocess
    import sys
    from pathlib import Path

    here = Path(__file__)
    run = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-k",
                          "raised_on_leaving_it", str(here)], cwd=here.parents[2], capture_output=True, text=True,
                         preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN))
    assert run.returncode == 0, run.stdout[-2000:]
