"""All DVC access: init, track, and reading what DVC tracks.

Writing goes through dvc's Python API (imported lazily: ``import dvc.repo``
alone costs ~0.25 s). Reading a tracked entry parses the ``.dvc`` file or
``dvc.lock`` directly, so it is fast and never takes DVC's repository lock
(``git model eval`` runs inside ``dvc repro``, which holds it).
"""
from __future__ import annotations

import logging
import re
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from gitmodel.errors import DvcError

LOCK_FILE = "dvc.lock"


@contextmanager
def _quiet_dvc():
    # DVC logs hints ("To track the changes with git, run: ...") on its own
    # logger; the core never prints, so those are muted while we call it.
    log = logging.getLogger("dvc")
    level = log.level
    log.setLevel(logging.WARNING)
    try:
        yield
    finally:
        log.setLevel(level)


def _open(root: Path):
    from dvc.repo import Repo

    repo = Repo(str(root))
    repo.scm_context.quiet = True
    repo.scm_context.autostage = False  # we stage ourselves, once the whole command succeeded
    return repo


def is_initialized(root: Path) -> bool:
    return (Path(root) / ".dvc").is_dir()


def init(root: Path) -> list[Path]:
    """``dvc init`` in a git repository; returns the files it created."""
    from dvc.repo import Repo

    with _quiet_dvc():
        try:
            Repo.init(str(root))
        except Exception as e:  # DVC raises many kinds; the message is what matters
            raise DvcError(f"dvc init failed in {root}: {e}") from e
    return [Path(root) / p for p in (".dvc/config", ".dvc/.gitignore", ".dvcignore")]


def track(root: Path, path: Path) -> Path:
    """``dvc add`` one file; returns its ``.dvc`` file."""
    with _quiet_dvc():
        try:
            repo = _open(root)
            try:
                repo.add([str(path)])
            finally:
                repo.close()
        except Exception as e:
            raise DvcError(f"dvc could not track {path}: {e}",
                           hint="run `dvc add` on it by hand to see DVC's full report") from e
    return Path(str(path) + ".dvc")


@dataclass
class TrackedOut:
    """What DVC records for one tracked file."""

    path: Path             # the tracked file (absolute)
    md5: str | None
    size: int | None
    source: Path           # the .dvc file or dvc.lock it was read from
    meta: dict = field(default_factory=dict)


def _yaml_load(text: str, source: Path):
    from ruamel.yaml import YAML, YAMLError

    from gitmodel.yamlio import describe

    try:
        return YAML(typ="safe", pure=True).load(text)
    except YAMLError as e:
        raise DvcError(f"{source}: not valid YAML: {describe(e)}") from None


def parse_dvc_file(text: str, dvc_file: Path) -> TrackedOut | None:
    """The single out of a ``.dvc`` file's text."""
    data = _yaml_load(text, dvc_file) or {}
    outs = data.get("outs") or []
    if not outs:
        return None
    out = outs[0]
    return TrackedOut(path=dvc_file.parent / out.get("path", ""), md5=out.get("md5"), size=out.get("size"),
                      source=dvc_file, meta=out.get("meta") or {})


def parse_lock(text: str, lock_file: Path, target_rel: str) -> TrackedOut | None:
    """The out of ``dvc.lock`` whose path is ``target_rel`` (relative to the lock's folder)."""
    data = _yaml_load(text, lock_file) or {}
    for stage in (data.get("stages") or {}).values():
        for out in stage.get("outs") or []:
            if out.get("path") == target_rel:
                return TrackedOut(path=lock_file.parent / target_rel, md5=out.get("md5"),
                                  size=out.get("size"), source=lock_file, meta={})
    return None


def lock_lineage(text: str, lock_file: Path, target_rel: str) -> dict | None:
    """How ``dvc.lock`` says ``target_rel`` was made: the stage whose outs hold it, its
    command, its deps (path + md5) and its params; None when no stage produces it."""
    data = _yaml_load(text, lock_file) or {}
    for name, stage in (data.get("stages") or {}).items():
        if any(out.get("path") == target_rel for out in stage.get("outs") or []):
            deps = [{"path": d.get("path"), "md5": d.get("md5")} for d in stage.get("deps") or []]
            return {"stage": name, "cmd": stage.get("cmd"), "deps": deps, "params": stage.get("params") or {}}
    return None


def lock_entries(text: str, lock_file: Path, prefixes: tuple[str, ...]) -> dict:
    """stage name -> entry, for the ``dvc.lock`` stages with an out whose path starts with one of ``prefixes``."""
    data = _yaml_load(text, lock_file) or {}
    return {name: stage for name, stage in (data.get("stages") or {}).items()
            if any(str(out.get("path", "")).startswith(prefixes) for out in stage.get("outs") or [])}


def entry_from(base: Path, rel: str, dvc_text: str | None, lock_text: str | None) -> TrackedOut | None:
    """How DVC tracks ``rel`` given the texts of its ``.dvc`` file and of ``dvc.lock`` (either may be
    None), read from the workspace or from a git revision: the ``.dvc`` file when there is one, else
    the ``dvc.lock`` out. ``base`` is the folder the paths in the result are relative to."""
    if dvc_text is not None:
        return parse_dvc_file(dvc_text, Path(base) / (rel + ".dvc"))
    if lock_text is not None:
        return parse_lock(lock_text, Path(base) / LOCK_FILE, rel)
    return None


# ----------------------------------------------------------------------------- what a revision tracks

# The one out of a .dvc file as DVC writes it: its md5 read without a YAML parser (ruamel is too slow
# an import for `diff` and `log`); any other shape goes through the full parser.
_SINGLE_OUT_MD5 = re.compile(r"\Aouts:\n- md5: ([0-9a-f]{32})\n(?:  [^\n]*\n)*\Z")


def _texts_at(root: Path, commits: list[str | None], rels: list[str],
              reader=None) -> list[tuple[list[bytes | None], bytes | None]]:
    """Per commit (None: the workspace): the bytes of each ``<rel>.dvc`` and of ``dvc.lock`` (None when
    absent). Every commit's files are read through one ``git cat-file --batch``."""
    from gitmodel import gitrepo

    found: list[tuple[list[bytes | None], bytes | None]] = []
    committed = [c for c in commits if c is not None]
    specs = [f"{c}:{rel}.dvc" for c in committed for rel in rels] + [f"{c}:{LOCK_FILE}" for c in committed]
    blobs = gitrepo.read_blobs(root, specs, reader)
    for commit in commits:
        if commit is None:
            texts = [gitrepo.read_at(root, None, rel + ".dvc") for rel in rels]
            found.append((texts, gitrepo.read_at(root, None, LOCK_FILE)))
        else:
            found.append(([blobs[f"{commit}:{rel}.dvc"] for rel in rels], blobs[f"{commit}:{LOCK_FILE}"]))
    return found


def tracked_at(root: Path, commit: str | None, rels: list[str], reader=None) -> dict[str, TrackedOut | None]:
    """What ``commit`` (None: the workspace) tracks for each path in ``rels``: its ``.dvc`` file, else its
    ``dvc.lock`` out, else None. The one answer to "what does this revision track"; paths in the
    results are as :func:`entry_from` makes them; a ``dvc.lock`` out has its stage as ``meta["lineage"]``."""
    [(texts, lock)] = _texts_at(Path(root), [commit], rels, reader)
    lock_text = lock.decode("utf-8", "replace") if lock is not None else None
    found = {}
    for rel, data in zip(rels, texts):
        out = entry_from(root, rel, None if data is None else data.decode("utf-8", "replace"), lock_text)
        if out is not None and data is None:
            # a stage's out: its lineage is how dvc.lock says the stage made it
            out.meta = {"lineage": lock_lineage(lock_text, out.source, rel) or {}}
        found[rel] = out
    return found


def _md5(root: Path, rel: str, dvc: bytes | None, lock: bytes | None, lenient: bool) -> str | None:
    try:
        if dvc is not None:
            text = dvc.decode("utf-8")
            match = _SINGLE_OUT_MD5.match(text if text.endswith("\n") else text + "\n")
            if match:
                return match.group(1)
        out = entry_from(root, rel, None if dvc is None else dvc.decode("utf-8"),
                         None if lock is None else lock.decode("utf-8"))
    except (DvcError, UnicodeDecodeError):
        if not lenient:
            raise
        out = None
    return out.md5 if out else None


def tracked_md5s(root: Path, commits: list[str | None], rels: list[str], reader=None,
                 lenient: bool = False) -> dict[str | None, dict[str, str | None]]:
    """commit (None: the workspace) -> path -> the md5 it tracks, as :func:`tracked_at` reads it, without
    importing a YAML parser for a ``.dvc`` file of DVC's usual shape. ``lenient``: a file that cannot be
    read (an old commit's broken ``.dvc`` file) tracks nothing rather than raising."""
    rels = list(dict.fromkeys(rels))
    commits = list(dict.fromkeys(commits))
    if not rels:
        return {c: {} for c in commits}
    return {commit: {rel: _md5(Path(root), rel, data, lock, lenient) for rel, data in zip(rels, texts)}
            for commit, (texts, lock) in zip(commits, _texts_at(Path(root), commits, rels, reader))}


def tracked(root: Path, path: Path) -> TrackedOut | None:
    """How DVC tracks ``path`` (absolute, in the workspace) now: :func:`tracked_at` of the workspace."""
    root = Path(root)
    rel = Path(path).relative_to(root).as_posix() if Path(path).is_absolute() else Path(path).as_posix()
    return tracked_at(root, None, [rel])[rel]


def set_meta(dvc_file: Path, meta: dict) -> None:
    """Write ``meta`` into the out of a ``.dvc`` file, keeping the rest (and comments) as they are."""
    from ruamel.yaml import YAML

    from gitmodel.fsutil import atomic_write
    import io

    yaml = YAML()  # round-trip: user comments survive
    data = yaml.load(dvc_file.read_text("utf-8"))
    data["outs"][0]["meta"] = meta
    buf = io.StringIO()
    yaml.dump(data, buf)
    atomic_write(dvc_file, buf.getvalue())


def cache_dir(root: Path) -> Path:
    """The local DVC cache folder (``cache.dir`` in .dvc/config, else .dvc/cache)."""
    import configparser

    root = Path(root)
    for name in (".dvc/config.local", ".dvc/config"):
        cfg = root / name
        if cfg.is_file():
            parser = configparser.ConfigParser()
            try:
                parser.read_string(cfg.read_text("utf-8"))
            except configparser.Error:
                continue
            if parser.has_option("cache", "dir"):
                d = Path(parser.get("cache", "dir"))
                return d if d.is_absolute() else (root / ".dvc" / d).resolve()
    return root / ".dvc" / "cache"


def cache_path(root: Path, md5: str) -> Path:
    """Where DVC 3 keeps the object with this md5 in the local cache."""
    return cache_dir(root) / "files" / "md5" / md5[:2] / md5[2:]


# ----------------------------------------------------------------------------- config, and objects from a remote

DEFAULT_CACHE_TYPES = ("reflink", "copy")   # DVC's default when `cache.type` is not set
CACHE_TYPES = ("reflink", "hardlink", "symlink", "copy")


def _config_files(root: Path) -> list[Path]:
    """DVC's config files, lowest level first: system, global, repo, local (as ``dvc config`` reads them)."""
    import os

    import platformdirs

    system = os.getenv("DVC_SYSTEM_CONFIG_DIR") or platformdirs.site_config_dir("dvc", "iterative")
    user = os.getenv("DVC_GLOBAL_CONFIG_DIR") or platformdirs.user_config_dir("dvc", "iterative")
    return [Path(system) / "config", Path(user) / "config", Path(root) / ".dvc" / "config",
            Path(root) / ".dvc" / "config.local"]


def config_value(root: Path, section: str, option: str) -> str | None:
    """One value of DVC's merged config, read without importing dvc (a few ms, not a few hundred)."""
    import configparser

    value = None
    for cfg in _config_files(root):
        if not cfg.is_file():
            continue
        parser = configparser.ConfigParser(interpolation=None)
        try:
            parser.read_string(cfg.read_text("utf-8"))
        except (configparser.Error, OSError, UnicodeDecodeError):
            continue
        if parser.has_option(section, option):
            value = parser.get(section, option).strip().strip("'\"")
    return value


def cache_types(root: Path) -> list[str]:
    """``cache.type`` in preference order (``reflink,copy`` when unset), as DVC reads it."""
    value = config_value(root, "cache", "type")
    if not value:
        return list(DEFAULT_CACHE_TYPES)
    types = [t.strip().strip("'\"") for t in value.strip("[]").split(",")]
    unknown = [t for t in types if t not in CACHE_TYPES]
    if unknown or not types:
        raise DvcError(f"DVC config cache.type has {', '.join(unknown) or 'no value'}: "
                       f"expected a list of {', '.join(CACHE_TYPES)}",
                       hint="fix it with e.g. `dvc config cache.type reflink,copy`")
    return types


def default_remote(root: Path) -> str | None:
    return config_value(root, "core", "remote")


def fetch_object(root: Path, md5: str) -> Path:
    """Get the object with this md5 into the local cache from the default DVC remote.

    Returns its cache path. Raises DvcError naming the md5 when no remote is
    configured or the remote does not hold it.
    """
    target = cache_path(root, md5)
    remote = default_remote(root)
    if remote is None:
        raise DvcError(f"object {md5} is not in the local DVC cache ({cache_dir(root)}) and no default DVC "
                       "remote is configured to fetch it from",
                       hint="configure the remote that holds it (`dvc remote add -d NAME URL`), or copy the "
                            f"object into {target.relative_to(root) if target.is_relative_to(root) else target}")
    with _quiet_dvc():
        try:
            from dvc_data.hashfile.hash_info import HashInfo

            repo = _open(root)
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


# ----------------------------------------------------------------------------- objects on a DVC remote

def remote_names(root: Path) -> list[str]:
    """The DVC remotes of the merged config (``dvc remote list``), read without importing dvc."""
    names: list[str] = []
    for cfg in _config_files(root):
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


def in_cache(root: Path, md5: str) -> bool:
    return cache_path(root, md5).is_file()


def cache_objects(root: Path) -> dict[str, int]:
    """Every object of the local DVC 3 cache (``files/md5``): md5 -> size in bytes. Files DVC leaves
    while it writes (``*.tmp``, names that are not an md5) are not objects."""
    base = cache_dir(root) / "files" / "md5"
    found = {}
    for folder in sorted(base.iterdir()) if base.is_dir() else []:
        if len(folder.name) != 2 or not folder.is_dir():
            continue
        for obj in folder.iterdir():
            md5 = folder.name + obj.name
            if obj.is_file() and re.fullmatch(r"[0-9a-f]{32}(\.dir)?", md5):
                found[md5] = obj.stat().st_size
    return found


def dir_entries(root: Path, md5: str) -> list[str]:
    """The md5s of the files a directory object (``<md5>.dir``) in the local cache lists; [] when the
    object is not in the cache."""
    import json

    path = cache_path(root, md5)
    try:
        return [e["md5"] for e in json.loads(path.read_text("utf-8")) if isinstance(e, dict) and e.get("md5")]
    except (OSError, ValueError):
        return []


def remove_cache_objects(root: Path, md5s: list[str]) -> list[str]:
    """Delete these objects from the local cache; returns those removed."""
    removed = []
    for md5 in md5s:
        path = cache_path(root, md5)
        try:
            path.chmod(0o644)     # DVC protects cache files read-only
            path.unlink()
            removed.append(md5)
        except FileNotFoundError:
            continue
        except OSError as e:
            raise DvcError(f"could not remove {path} from the DVC cache: {e}",
                           hint=f"removed so far: {len(removed)} object(s); fix the permission and run it again") \
                from None
    return removed


def workspace_objects(root: Path) -> set[str]:
    """The md5s of every file DVC tracks in the workspace (``dvc gc -w`` keeps these), directory
    objects with their files, as DVC collects them."""
    with _quiet_dvc():
        try:
            repo = _open(root)
            try:
                used = repo.used_objs()
            finally:
                repo.close()
        except Exception as e:  # DVC raises many kinds; the message is what matters
            raise DvcError(f"DVC could not list what the workspace tracks: {e}",
                           hint="run `dvc status` to see DVC's full report") from e
    return {h.value for hashes in used.values() for h in hashes if h.value}


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
        with _quiet_dvc():
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
    with _quiet_dvc():
        try:
            repo = _open(root)
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
