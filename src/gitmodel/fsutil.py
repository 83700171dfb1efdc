"""File operations that cannot be half-done, and hashing with a state cache.

* :func:`atomic_write` writes a temporary file in the same folder, fsyncs it
  and renames it over the target: a reader (or a crash) sees the old bytes or
  the new bytes, never a partial file.
* :func:`replace_all` replaces several files together, or none of them when interrupted.
* :class:`Snapshot` remembers the bytes of the files a command is about to
  change and puts them back if the command fails, so that a failed command
  leaves the repository as it found it.
* :func:`md5_file` hashes like DVC (plain md5 of the bytes) and remembers the
  result keyed on (inode, size, mtime_ns), as DVC's state database does, so a
  multi-GB checkpoint is hashed once, not on every command.
"""
from __future__ import annotations

import hashlib
import json
import os
import secrets
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from gitmodel.interrupts import Deferral

TMP_PREFIX = ".gitmodel-tmp-"


def temp_prefix() -> str:
    """``.gitmodel-tmp-<pid>-``: a temporary file names the process that made it, so one
    left by a killed process is told apart from one a live process is writing."""
    return f"{TMP_PREFIX}{os.getpid()}-"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_stale_temps(folder: Path | str) -> list[Path]:
    """Delete the temporary files in ``folder`` left by git-model processes that no longer run."""
    removed = []
    folder = Path(folder)
    if not folder.is_dir():
        return removed
    for p in folder.glob(f"{TMP_PREFIX}*"):
        pid = p.name[len(TMP_PREFIX):].split("-", 1)[0]
        if pid.isdigit() and int(pid) != os.getpid() and not _alive(int(pid)):
            try:
                p.unlink()
                removed.append(p)
            except FileNotFoundError:
                pass
    return removed


def atomic_write(path: Path | str, data: bytes | str) -> None:
    path = Path(path)
    if isinstance(data, str):
        data = data.encode("utf-8")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=temp_prefix(), dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        if path.exists():
            os.chmod(tmp, path.stat().st_mode & 0o777)
        else:
            os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


class Snapshot:
    """Restore the given files (and absence of files) if the ``with`` body fails."""

    def __init__(self, *paths: Path | str):
        self._saved: dict[Path, bytes | None] = {}
        self.add(*paths)

    def add(self, *paths: Path | str) -> None:
        for p in map(Path, paths):
            if p not in self._saved:
                self._saved[p] = p.read_bytes() if p.is_file() else None

    def restore(self) -> None:
        for p, data in self._saved.items():
            if data is None:
                if p.is_file() or p.is_symlink():
                    p.unlink()
            elif not p.is_file() or p.read_bytes() != data:
                atomic_write(p, data)

    def __enter__(self) -> "Snapshot":
        return self

    def __exit__(self, exc_type, exc, tb) -> bool:
        if exc_type is not None:
            self.restore()
        return False


CHUNK = 4 << 20   # read size for hashing and comparing multi-GB files


def md5_of(path: Path | str) -> str:
    """DVC's md5 of a file: plain md5 of its bytes, read into one reused buffer."""
    h = hashlib.md5()
    buf = bytearray(CHUNK)
    view = memoryview(buf)
    with open(path, "rb", buffering=0) as f:
        while n := f.readinto(buf):
            h.update(view[:n])
    return h.hexdigest()


class HashCache:
    """md5 of files keyed on (path, inode, size, mtime_ns), kept in a JSON file."""

    def __init__(self, store: Path | None):
        self.store = store
        self._entries: dict[str, list] | None = None

    def _load(self) -> dict[str, list]:
        if self._entries is None:
            self._entries = {}
            if self.store and self.store.is_file():
                try:
                    self._entries = json.loads(self.store.read_text("utf-8"))
                except (ValueError, OSError):
                    self._entries = {}  # a damaged cache is only a slower start
        return self._entries

    def md5(self, path: Path | str) -> str:
        path = Path(path)
        st = path.stat()
        key = str(path.resolve())
        stamp = [st.st_ino, st.st_size, st.st_mtime_ns]
        entries = self._load()
        hit = entries.get(key)
        if hit and hit[:3] == stamp:
            return hit[3]
        digest = md5_of(path)
        entries[key] = stamp + [digest]
        if self.store is not None:
            try:
                atomic_write(self.store, json.dumps(entries))
            except OSError:
                pass
        return digest

    def known(self, path: Path | str) -> str | None:
        """The recorded md5 of ``path`` when its (inode, size, mtime) still match, else None (no hashing)."""
        path = Path(path)
        try:
            st = path.stat()
        except FileNotFoundError:
            return None
        hit = self._load().get(str(path.resolve()))
        return hit[3] if hit and hit[:3] == [st.st_ino, st.st_size, st.st_mtime_ns] else None

    def record(self, path: Path | str, md5: str) -> None:
        """Remember that ``path`` (as it is now) has this md5: bytes just written from a verified source."""
        path = Path(path)
        st = path.stat()
        self._load()[str(path.resolve())] = [st.st_ino, st.st_size, st.st_mtime_ns, md5]
        if self.store is not None:
            try:
                atomic_write(self.store, json.dumps(self._entries))
            except OSError:
                pass


def md5_file(path: Path | str, cache_file: Path | None = None) -> str:
    return HashCache(cache_file).md5(path)


def is_inside(child: Path, parent: Path) -> bool:
    try:
        child.relative_to(parent)
        return True
    except ValueError:
        return False


def _keep_previous(path: Path) -> Path:
    """A second name for ``path``'s current bytes (a hard link, else a copy), to put back."""
    backup = path.parent / f"{temp_prefix()}{secrets.token_hex(6)}"
    try:
        os.link(path, backup)
    except OSError:
        shutil.copy2(path, backup)
    return backup


def replace_all(files: dict[Path, bytes], interrupt: Deferral) -> None:
    """Replace every file of ``files`` or none of them.

    Each new file is written and fsynced beside its target first; a Ctrl-C
    (or an error) until then removes them and leaves the targets as they
    were. The renames then run with SIGINT held back; one that arrived during
    them puts the previous files back, from hard links taken before.
    """
    temps: dict[Path, Path] = {}
    backups: dict[Path, Path] = {}
    renamed: list[Path] = []
    try:
        for path, data in files.items():
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=temp_prefix(), dir=path.parent)
            temps[path] = Path(tmp)
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.chmod(tmp, path.stat().st_mode & 0o777 if path.exists() else 0o644)
            if path.exists():
                backups[path] = _keep_previous(path)
            interrupt.check()
        for path, tmp in temps.items():
            os.replace(tmp, path)
            renamed.append(path)
        interrupt.check()     # the commit point: a Ctrl-C after it no longer undoes the run
    except BaseException:
        for path in reversed(renamed):
            if path in backups:
                os.replace(backups.pop(path), path)
            else:
                path.unlink()
        raise
    finally:
        for leftover in [*temps.values(), *backups.values()]:
            try:
                os.unlink(leftover)
            except FileNotFoundError:
                pass
