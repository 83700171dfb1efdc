"""One writer at a time per repository, for commands that write metrics or weights.

An ``flock`` on ``.dvc/tmp/gitmodel/lock``: the kernel drops it when the
holder dies, so a lock left by a crashed or killed process is recovered
without any clean-up. The file names the holder, for the error message.
"""
from __future__ import annotations

import fcntl
import json
import os
import socket
import sys
import time
from contextlib import contextmanager
from pathlib import Path

from gitmodel.errors import LockHeld

LOCK_NAME = "lock"


def _holder(path: Path) -> str:
    try:
        info = json.loads(path.read_text("utf-8") or "{}")
    except (OSError, ValueError):
        return "another git-model process"
    return f"pid {info.get('pid', '?')} on {info.get('host', '?')} ({info.get('command', '?')}, since {info.get('since', '?')})"


@contextmanager
def repository_lock(state_dir: Path, command: str | None = None, wait: float = 0.0, on_wait=None):
    """Hold the repository's writer lock; wait up to ``wait`` seconds for it, then fail naming the holder."""
    state_dir.mkdir(parents=True, exist_ok=True)
    path = state_dir / LOCK_NAME
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        deadline = time.monotonic() + max(wait, 0.0)
        told = False
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                holder = _holder(path)
                if time.monotonic() >= deadline:
                    raise LockHeld(f"another git-model command holds the repository lock: {holder}",
                                   hint="wait for it to finish, or pass --wait SECONDS to wait for it") from None
                if on_wait and not told:
                    on_wait(holder)
                    told = True
                time.sleep(0.1)
        info = {"pid": os.getpid(), "host": socket.gethostname(),
                "command": command or " ".join(["git", "model", *sys.argv[1:]]),
                "since": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(info).encode(), 0)
        try:
            yield
        finally:
            os.ftruncate(fd, 0)
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)
