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
def quiet_dvc():
    # DVC logs hints ("To track the changes with git, run: ...") on its own
    # logger; the core never prints, so those are muted while we call it.
    log = logging.getLogger("dvc")
    level = log.level
    log.setLevel(logging.WARNING)
    try:
        yield
    finally:
        log.setLevel(level)


def open_repo(root: Path):
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

    with quiet_dvc():
        try:
            Repo.init(str(root))
        except Exception as e:  # DVC raises many kinds; the message is what matters
            raise DvcError(f"dvc init failed in {root}: {e}") from e
    return [Path(root) / p for p in (".dvc/config", ".dvc/.gitignore", ".dvcignore")]


def track(root: Path, path: Path) -> Path:
    """``dvc add`` one file; returns its ``.dvc`` file."""
    with quiet_dvc():
        try:
            repo = open_repo(root)
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


# ----------------------------------------------------------------------------- config, and the local cache

DEFAULT_CACHE_TYPES = ("reflink", "copy")   # DVC's default when `cache.type` is not set
CACHE_TYPES = ("reflink", "hardlink", "symlink", "copy")


def config_files(root: Path) -> list[Path]:
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
    for cfg in config_files(root):
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
    with quiet_dvc():
        try:
            repo = open_repo(root)
            try:
                used = repo.used_objs()
            finally:
                repo.close()
        except Exception as e:  # DVC raises many kinds; the message is what matters
            raise DvcError(f"DVC could not list what the workspace tracks: {e}",
                           hint="run `dvc status` to see DVC's full report") from e
    return {h.value for hashes in used.values() for h in hashes if h.value}
