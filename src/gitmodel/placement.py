"""Putting a verified cache object at a model's path: the step of a rollback that cannot be half-done.

The new file is made at a temporary name beside the model with the first
``cache.type`` this file system supports (reflink, hardlink, symlink, copy:
the attempt *is* the probe, so an unsupported reflink on ext4 is found out
before anything is removed), then swapped in atomically: the model path holds
the old bytes or the new bytes, never a partial file and never nothing.
"""
from __future__ import annotations

import errno
import os
import secrets
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path

from gitmodel import fsutil, store
from gitmodel.errors import GitModelError

FICLONE = 0x40049409        # linux/fs.h: _IOW(0x94, 9, int)


class CorruptObject(GitModelError):
    pass


def _reflink(src: Path, dst: Path) -> None:
    import fcntl

    with open(src, "rb") as f, open(dst, "xb") as g:
        fcntl.ioctl(g.fileno(), FICLONE, f.fileno())


def _make(kind: str, src: Path, dst: Path) -> None:
    if kind == "reflink":
        _reflink(src, dst)
    elif kind == "hardlink":
        os.link(src, dst)
    else:
        os.symlink(os.path.abspath(src), dst)


@dataclass
class Placed:
    method: str                  # the cache.type used
    old: Path | None = None      # where the replaced file now is, to be deleted (see swap_in)
    unsupported: list[str] = field(default_factory=list)   # "reflink (Operation not supported)"


def place(obj: Path, dest: Path, types: list[str], md5: str, verified: bool, before_replace=None) -> Placed:
    """Put the bytes of cache object ``obj`` at ``dest`` atomically, with the first of ``types`` that works.

    Each type is tried at a temporary name in ``dest``'s folder: a type the
    file system does not support fails there, before anything is removed, and
    the next is tried; ``copy`` always works and is the last resort. Only a
    complete file is put at ``dest``, in one atomic step (:func:`swap_in`).
    ``verified`` False: the object's md5 is computed on another core while the
    new file is made, and a corrupt object is refused with ``dest`` untouched.
    ``before_replace`` runs last before the swap; what it raises leaves
    ``dest`` untouched too. The replaced file is left at ``Placed.old`` for the
    caller to delete (deleting a big file that is in the page cache takes a
    while; the caller does it while git works).
    """
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.parent / f"{fsutil.temp_prefix()}{secrets.token_hex(4)}-{dest.name}"
    placed = Placed(method="copy")
    hashing = None
    if not verified:
        from concurrent.futures import ThreadPoolExecutor

        pool = ThreadPoolExecutor(max_workers=1)
        hashing = pool.submit(fsutil.md5_of, obj)
        pool.shutdown(wait=False)
    swapped = False
    try:
        for kind in dict.fromkeys([*types, "copy"]):    # the configured order; copy is the last resort
            try:
                if kind == "copy":
                    shutil.copyfile(obj, tmp)          # the kernel copies (sendfile), like cp
                    os.chmod(tmp, 0o644)
                else:
                    _make(kind, obj, tmp)
            except OSError as e:
                if kind == "copy":
                    raise
                placed.unsupported.append(f"{kind} ({e.strerror or e})")
                remove_if_exists(tmp)
                continue
            placed.method = kind
            break
        if hashing is not None:
            got = hashing.result()
            if got != md5:
                raise CorruptObject(f"DVC cache object {obj} is corrupt: its md5 is {got}, not {md5}",
                                    hint="delete it and run the command again to fetch it from the remote")
        if before_replace is not None:
            before_replace()
        existed = os.path.lexists(dest)
        swap_in(tmp, dest)
        swapped = True
        placed.old = tmp if existed and os.path.lexists(tmp) else None
    finally:
        if not swapped:
            if hashing is not None:
                hashing.cancel()
            remove_if_exists(tmp)
    return placed


RENAME_EXCHANGE = 2     # linux/fs.h


def _exchange(a: Path, b: Path) -> None:
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    renameat2 = getattr(libc, "renameat2", None)
    if renameat2 is None:
        raise OSError(errno.ENOSYS, "renameat2 is not available")
    at_fdcwd = -100
    if renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), RENAME_EXCHANGE) != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))


def swap_in(tmp: Path, dest: Path) -> None:
    """Put the complete file ``tmp`` at ``dest`` in one atomic step: ``dest`` holds the old file or the
    new one, never neither.

    When ``dest`` exists the two names are exchanged (``renameat2(RENAME_EXCHANGE)``) and the old file,
    now at ``tmp``, is deleted (by the caller, or as a stale temporary file after a kill). A plain
    rename over an existing file would make ext4 write the whole new file to disk first (its
    ``auto_da_alloc`` rule): half a second per GiB that neither ``cp`` nor ``dvc checkout`` pays. No
    fsync either, as DVC does not: a killed process loses nothing that reached the page cache.
    """
    if os.path.lexists(dest) and sys.platform.startswith("linux"):
        try:
            _exchange(tmp, dest)
            return
        except OSError as e:
            if e.errno not in (errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP, errno.ENOTSUP):
                raise
    os.replace(tmp, dest)


def save_to_cache(root: Path, path: Path, md5: str) -> None:
    """Keep the workspace bytes (known to have this md5) in the DVC cache before they are replaced:
    a copy made at a temporary name and renamed in, read-only like DVC's objects."""
    obj = store.cache_path(root, md5)
    obj.parent.mkdir(parents=True, exist_ok=True)
    tmp = obj.parent / f"{fsutil.temp_prefix()}{secrets.token_hex(4)}"
    try:
        shutil.copyfile(path, tmp)
        os.chmod(tmp, 0o444)
        os.replace(tmp, obj)
    finally:
        remove_if_exists(tmp)


def remove_if_exists(path: Path) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


# ----------------------------------------------------------------------------- what the model path holds


def workspace_md5(root: Path, path: Path, hashes, candidates: list[str]) -> str | None:
    """md5 of the workspace model without reading it when possible: a link to a cache object,
    or a file whose (inode, size, mtime) were recorded. None: it must be hashed."""
    if path.is_symlink():
        real = Path(os.path.realpath(path))
        cache = (store.cache_dir(root) / "files" / "md5").resolve()
        if real.is_file() and fsutil.is_inside(real, cache):
            return real.parent.name + real.name
    for md5 in candidates:
        obj = store.cache_path(root, md5)
        try:
            if obj.is_file() and os.path.samefile(obj, path):
                return md5
        except OSError:
            pass
    return hashes.known(path)


def same_bytes(a: Path, b: Path) -> bool:
    """Byte-for-byte equality, read in big chunks: several times faster than hashing."""
    ba, bb = bytearray(fsutil.CHUNK), bytearray(fsutil.CHUNK)
    with open(a, "rb", buffering=0) as f, open(b, "rb", buffering=0) as g:
        while True:
            n, m = f.readinto(ba), g.readinto(bb)
            if n != m:
                return False
            if n == 0:
                return True
            if (ba != bb) if n == fsutil.CHUNK else (ba[:n] != bb[:n]):
                return False


def prove(root: Path, path: Path, tracked_md5: str | None) -> tuple[str, str, Path | None]:
    """(md5 of the model at ``path``, how it was found, the object compared with). The same bytes as the
    tracked object are found by comparing (cheap), anything else by hashing. Reads only: safe in a thread."""
    if tracked_md5:
        tracked = store.cache_path(root, tracked_md5)
        try:
            if tracked.stat().st_size == path.stat().st_size and same_bytes(path, tracked):
                return tracked_md5, "compared", tracked
        except FileNotFoundError:
            pass
    return fsutil.md5_of(path), "hashed", None


def record_proof(hashes, path: Path, md5: str, how: str, compared: Path | None) -> str:
    """Remember the model's md5 when it is certain: hashed, or equal to a verified object."""
    if how == "hashed" or (compared is not None and hashes.known(compared) == md5):
        hashes.record(path, md5)
    return md5


def put_back(root: Path, path: Path, md5: str | None, existed: bool) -> None:
    """Undo a placement after a later step failed: the previous bytes are in the cache (or there were none)."""
    try:
        if not existed:
            remove_if_exists(path)
        elif md5 is not None and store.cache_path(root, md5).is_file():
            placed = place(store.cache_path(root, md5), path, store.cache_types(root), md5, verified=True)
            if placed.old is not None:
                remove_if_exists(placed.old)
    except (OSError, GitModelError):
        pass
