"""DVC remotes: which one a command uses, and the objects on it (presence as ``dvc status -c`` sees it,
push, fetch, listing, removal), through DVC's own data cloud. The names are read from DVC's config
without importing dvc; dvc is imported only to move or list objects."""
from __future__ import annotations

import re
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from gitmodel import store
from gitmodel.errors import DvcError


def default_remote(root: Path) -> str | None:
    return store.config_value(root, "core", "remote")


def fetch_object(root: Path, md5: str) -> Path:
    """Get the object with this md5 into the local cache from the default DVC remote.

    Returns its cache path. Raises DvcError naming the md5 when no remote is
    configured or the remote does not hold it.
    """
    target = store.cache_path(root, md5)
    remote = default_remote(root)
    if remote is None:
        raise DvcError(f"object {md5} is not in the local DVC cache ({store.cache_dir(root)}) and no default DVC "
                       "remote is configured to fetch it from",
                       hint="configure the remote that holds it (`dvc remote add -d NAME URL`), or copy the "
                            f"object into {target.relative_to(root) if target.is_relative_to(root) else target}")
    with store.quiet_dvc():
        try:
            from dvc_data.hashfile.hash_info import HashInfo

            repo = store.open_repo(root)
            try:
                result = repo.cloud.pull([HashInfo("md5", md5)], remote=remote)
            finally:
                repo.close()
            failed = bool(result.failed)
        except Exception as e:  # DVC raises many kinds (network, config...); the message is what matters
            raise DvcError(f"could not fetch object {md5} from DVC remote '{remote}': {e}",
                           hint="check the remote with `dvc remote list` and `dvc status -c`") from e
    if failed or not target.is_file():
        raise DvcError(f"object {md5} is neither in the local DVC cache nor on DVC remote '{remote}'",
                       hint="push it from a machine that has it (`dvc push`), or point the default remote at "
                            "one that holds it")
    return target


def remote_names(root: Path) -> list[str]:
    """The DVC remotes of the merged config (``dvc remote list``), read without importing dvc."""
    names: list[str] = []
    for cfg in store.config_files(root):
        if cfg.is_file():
            try:
                text = cfg.read_text("utf-8")
            except (OSError, UnicodeDecodeError):
                continue
            names += re.findall(r"""^\s*\[\s*['"]?remote\s+"([^"]+)"['"]?\s*\]""", text, flags=re.M)
    return list(dict.fromkeys(names))


def resolve_remote(root: Path, name: str | None = None) -> str:
    """The DVC remote a command uses: ``name``, else the default (``core.remote``); the error says how
    to configure one."""
    names = remote_names(root)
    if name is not None:
        if name not in names:
            raise DvcError(f"no DVC remote named '{name}' (remotes: {', '.join(names) or 'none'})",
                           hint="list them with `dvc remote list`; add one with `dvc remote add NAME URL`")
        return name
    default = default_remote(root)
    if default is None:
        if names:
            raise DvcError(f"no default DVC remote is set (remotes: {', '.join(names)})",
                           hint="name one with --remote NAME, or make it the default: `dvc remote default NAME`")
        raise DvcError("no DVC remote is configured: the weights live in this machine's DVC cache only",
                       hint="add one and commit .dvc/config, e.g. `dvc remote add -d storage s3://bucket/models` "
                            "(or a shared folder: `dvc remote add -d storage /mnt/shared/dvc`)")
    if default not in names:
        raise DvcError(f"the default DVC remote '{default}' (core.remote) is not defined",
                       hint="fix it with `dvc remote default NAME` (see `dvc remote list`)")
    return default


def _progress_callback(report):
    """DVC's transfer callback (fsspec's interface), reporting (files done, files in all) to ``report``."""
    from fsspec.callbacks import Callback

    class Reporting(Callback):
        def call(self, *args, **kwargs):
            if report is not None and self.size:
                report(self.value, self.size)

    return Reporting()


@dataclass
class Transfer:
    transferred: set[str]
    failed: set[str]


class Remote:
    """One DVC remote, opened once through DVC's own data cloud: presence (as ``dvc status -c`` sees it),
    push, fetch, listing and removal of objects. Use :func:`open_remote`."""

    def __init__(self, root: Path, name: str, repo):
        self.root, self.name, self._repo = Path(root), name, repo
        remote = repo.cloud.get_remote(name)
        self.url = remote.fs.unstrip_protocol(remote.path)
        self._local = remote.fs.protocol == "local"
        self._path = remote.path

    def _hashes(self, md5s):
        from dvc_data.hashfile.hash_info import HashInfo

        return [HashInfo("md5", m) for m in md5s]

    def check_reachable(self) -> None:
        """A folder remote that is gone (an unmounted share) is refused: DVC would quietly create it on the
        local disk and call every object missing."""
        if self._local and not Path(self._path).is_dir():
            raise DvcError(f"DVC remote '{self.name}' is the folder {self._path}, which does not exist "
                           "(an unmounted share?)",
                           hint="mount it, or create it (`mkdir -p`) if it is a new remote; "
                                "`dvc remote list` shows where each remote points")

    def _call(self, doing: str, fn):
        with store.quiet_dvc():
            try:
                return fn()
            except DvcError:
                raise
            except Exception as e:  # DVC raises many kinds (network, auth, config); the message is what matters
                raise DvcError(f"{doing} DVC remote '{self.name}' ({self.url}) failed: {e}",
                               hint="check the remote with `dvc remote list` and `dvc status -c`") from e

    def present(self, md5s) -> set[str]:
        """The md5s the remote holds, as ``dvc status -c`` / ``dvc fetch`` see them."""
        md5s = sorted(set(md5s))
        if not md5s:
            return set()
        self.check_reachable()
        status = self._call("reading", lambda: self._repo.cloud.status(self._hashes(md5s), remote=self.name))
        return {h.value for h in status.ok | status.deleted}

    def push(self, md5s, progress=None) -> Transfer:
        """Copy these objects from the local cache to the remote (those it lacks)."""
        self.check_reachable()
        return self._transfer("pushing to", md5s, progress, push=True)

    def fetch(self, md5s, progress=None) -> Transfer:
        """Copy these objects from the remote into the local cache (those it lacks), as ``dvc fetch``."""
        self.check_reachable()
        return self._transfer("fetching from", md5s, progress, push=False)

    def _transfer(self, doing: str, md5s, progress, push: bool) -> Transfer:
        from dvc_data.hashfile.db import get_index

        def run():
            odb = self._repo.cloud.get_remote_odb(self.name, "push" if push else "fetch")
            cache = self._repo.cache.local
            src, dest = (cache, odb) if push else (odb, cache)
            index = {"dest_index" if push else "src_index": get_index(odb)}
            return self._repo.cloud.transfer(src, dest, self._hashes(sorted(set(md5s))), cache_odb=cache,
                                             verify=not push and odb.verify, callback=_progress_callback(progress), **index)

        result = self._call(doing, run)
        return Transfer({h.value for h in result.transferred}, {h.value for h in result.failed})

    def objects(self) -> dict[str, int]:
        """Every object on the remote: md5 -> size in bytes."""
        self.check_reachable()

        def run():
            odb = self._repo.cloud.get_remote_odb(self.name, "gc")
            return {oid: odb.fs.size(odb.oid_to_path(oid)) for oid in odb.all()}

        return self._call("listing", run)

    def remove(self, md5s) -> list[str]:
        """Delete these objects from the remote; returns those removed."""
        self.check_reachable()

        def run():
            odb = self._repo.cloud.get_remote_odb(self.name, "gc")
            removed = []
            for md5 in md5s:
                path = odb.oid_to_path(md5)
                if odb.fs.exists(path):
                    odb.fs.remove(path)
                    removed.append(md5)
            return removed

        return self._call("removing objects from", run)


@contextmanager
def open_remote(root: Path, name: str | None = None):
    """The DVC remote ``name`` (default: ``core.remote``), resolved and opened once for a command."""
    name = resolve_remote(root, name)
    repo = None
    with store.quiet_dvc():
        try:
            repo = store.open_repo(root)
            remote = Remote(root, name, repo)
        except Exception as e:  # DVC raises many kinds (config, a remote scheme without its plugin...)
            if repo is not None:
                repo.close()
            raise DvcError(f"DVC could not open remote '{name}': {e}",
                           hint="check it with `dvc remote list` and `dvc status -c`") from e
    try:
        yield remote
    finally:
        repo.close()
