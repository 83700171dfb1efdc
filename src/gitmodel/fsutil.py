"""File operations that cannot be half-done, and hashing with a state cache.

* :func:`atomic_write` writes a temporary file in the same folder, fsyncs it
  and renames it over the target: a reader (or a crash) sees the old bytes or
  the new bytes, never a partial file.
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
import tempfile
from pathlib import Path

TMP_PREFIX = ".gitmodel-tmp-"


def atomic_write(path: Path | str, data: bytes | str) -> None:
    path = Path(path)
    if isinstance(data, str):
        data = data.encode("utf-8")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=TMP_PREFIX, dir=path.parent)
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


def _md5_of_bytes(path: Path) -> str:
    h = hashlib.md5()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
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
        digest = _md5_of_bytes(path)
        entries[key] = stamp + [digest]
        if self.store is not None:
            try:
                atomic_write(self.store, json.dumps(entries))
            except OSError:
                pass
        return digest


def md5_file(path: Path | str, cache_file: Path | None = None) -> str:
    return HashCache(cache_file).md5(path)


def is_inside(child: Path, parent: Path) -> bool:
    try:
        child.relative_to(parent)
        return True
    except ValueError:
        return False
