"""Ctrl-C that takes effect at a safe point instead of anywhere.

Python raises ``KeyboardInterrupt`` at whatever bytecode the main thread runs
next. Inside a ctypes callback (llama.cpp's log callback, called during a
model load) that exception cannot propagate: ctypes prints "Exception ignored
on calling ctypes callback function" and drops it, and the run carries on as
if Ctrl-C had never been pressed. And between two renames that must happen
together, it would leave one file new and the other old.

Inside :func:`deferred`, SIGINT only records that it arrived; the code polls
:attr:`Deferral.pending` at points where stopping is safe (between examples,
before a commit) and raises ``KeyboardInterrupt`` there. On leaving the block
a pending interrupt is raised, so it is never lost.
"""
from __future__ import annotations

import signal
import threading
from contextlib import contextmanager
from typing import Iterator


class Deferral:
    """What a :func:`deferred` block saw: ``pending`` once SIGINT arrived."""

    def __init__(self, parent: "Deferral | None" = None):
        self.parent = parent
        self._pending = False

    @property
    def pending(self) -> bool:
        return self._pending or (self.parent is not None and self.parent.pending)

    def set(self) -> None:
        self._pending = True
        if self.parent is not None:
            self.parent.set()

    def check(self) -> None:
        """Raise ``KeyboardInterrupt`` now if SIGINT arrived."""
        if self.pending:
            raise KeyboardInterrupt


# What the command line prints when Ctrl-C stopped a command: every command
# writes nothing until its last step, so an interrupted one wrote nothing.
MESSAGE = "Interrupted: nothing was written."

_active: list[Deferral] = []


def raise_once(signum, frame) -> None:
    """SIGINT handler of a command-line process: the first Ctrl-C stops it, later ones are ignored.

    git passes the terminal's SIGINT on to ``git-model``, so one Ctrl-C can
    arrive twice; the second must not interrupt the clean-up of the first.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    raise KeyboardInterrupt


@contextmanager
def deferred(raise_on_exit: bool = True, last_step: bool = False) -> Iterator[Deferral]:
    """Hold SIGINT back for the block; raise it on leaving (unless ``raise_on_exit`` is False).

    ``last_step``: the block commits the command's result. In a command-line
    process (SIGINT handled by :func:`raise_once`) a Ctrl-C after it has
    nothing left to stop, so it is ignored rather than reported as having
    stopped a command that did its work.

    Signals reach the main thread only: elsewhere, and when SIGINT is ignored
    (a background job), the block runs as it is.
    """
    state = Deferral(_active[-1] if _active else None)
    if threading.current_thread() is not threading.main_thread():
        yield state
        return
    previous = signal.getsignal(signal.SIGINT)
    if previous in (signal.SIG_IGN, None):
        yield state
        return
    signal.signal(signal.SIGINT, lambda signum, frame: state.set())
    _active.append(state)
    failed = False
    try:
        yield state
    except BaseException:
        failed = True
        raise
    finally:
        _active.remove(state)
        # the interrupt this block held back counts as the process's one Ctrl-C
        done = state.pending or (last_step and not failed)
        signal.signal(signal.SIGINT, signal.SIG_IGN if done and previous is raise_once else previous)
        if raise_on_exit and state.pending and not failed:
            raise KeyboardInterrupt


def check() -> None:
    """Raise ``KeyboardInterrupt`` if SIGINT arrived during the innermost :func:`deferred` block."""
    if _active:
        _active[-1].check()
