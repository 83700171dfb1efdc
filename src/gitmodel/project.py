"""The layout of a git-model repository, ``git model init``, and safe paths."""
from __future__ import annotations

import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from gitmodel import dvcyaml, gitrepo, pairdeps, params, store
from gitmodel.errors import InvalidPath, NotInitialized
from gitmodel.fsutil import HashCache, Snapshot, atomic_write

STATE_DIR = ".dvc/tmp/gitmodel"      # ignored by DVC's own .dvc/.gitignore
LAYOUT_DIRS = (dvcyaml.MODELS_DIR, dvcyaml.EVALSETS_DIR, dvcyaml.METRICS_DIR)


def hash_cache(root: Path) -> HashCache:
    state = Path(root) / STATE_DIR
    return HashCache(state / "hashes.json" if (Path(root) / ".dvc").is_dir() else None)


def open_root(start: Path | None = None) -> Path:
    """The root of an initialised git-model repository containing ``start``."""
    root = gitrepo.find_root(start)
    if not (root / dvcyaml.DVC_YAML).is_file() or not store.is_initialized(root):
        raise NotInitialized(root)
    return root


def _name_max(folder: Path) -> int:
    try:
        return os.pathconf(folder, "PC_NAME_MAX")
    except (OSError, ValueError):
        return 255


def shorten(text, limit: int = 60) -> str:
    """``text`` cut to ``limit`` characters, for messages that quote what the user typed."""
    text = str(text)
    return text if len(text) <= limit else f"{text[:limit - 3]}..."


def _is_symlink(path: Path, what: str, user_path) -> bool:
    try:
        return path.is_symlink()
    except OSError as e:      # e.g. the whole path is longer than the file system allows
        raise InvalidPath(f"{what} {shorten(user_path)}: {e.strerror}", hint="give a shorter path") from None


def resolve_inside(root: Path, user_path: str | Path, what: str = "path") -> tuple[Path, str]:
    """(absolute path, path relative to root) of a user-given path, refusing escapes.

    A relative path is read from the current directory, as git reads it, so
    ``../models/x.gguf`` from a subfolder is fine when it lands inside the
    repository. Refused: paths outside the repository, a ``..`` after a
    symlinked folder (it leads where the link points, not where the text
    says), any symlink on the way (a symlinked folder could point anywhere
    on disk, and DVC would then write into it), and a file name longer than
    the file system allows.
    """
    raw = Path(user_path)
    limit = _name_max(root)
    for part in raw.parts:
        size = len(os.fsencode(part))
        if size > limit:
            raise InvalidPath(f"{what} {shorten(user_path)}: the name {shorten(part, 30)} is {size} bytes long; "
                              f"the file system allows {limit}",
                              hint="give the file a shorter name")
    cwd = Path(os.getcwd())
    if ".." in raw.parts:
        last = max(i for i, part in enumerate(raw.parts) if part == "..")
        current = raw.parents[len(raw.parts) - 1] if raw.is_absolute() else cwd
        for part in raw.parts[1 if raw.is_absolute() else 0:last]:
            current = current / part
            if part != ".." and _is_symlink(current, what, user_path):
                raise InvalidPath(f"{what} {user_path}: '..' after the symlink {part} "
                                  f"({current} -> {os.readlink(current)})",
                                  hint="give the path without '..', or the real path inside the repository")
    absolute = Path(os.path.normpath(raw if raw.is_absolute() else cwd / raw))
    real_root = root.resolve()
    try:
        rel = absolute.relative_to(root)
    except ValueError:
        try:
            rel = absolute.relative_to(real_root)
        except ValueError:
            raise InvalidPath(f"{what} {user_path} is outside the repository {root}",
                              hint="copy it into the repository first, e.g. under models/") from None
    current = real_root
    for part in rel.parts:
        current = current / part
        if _is_symlink(current, what, user_path):
            kind = "a symlink" if current == real_root / rel else "under a symlinked folder"
            raise InvalidPath(f"{what} {user_path} is {kind} ({current.relative_to(real_root)} -> {os.readlink(current)})",
                              hint="use the real path inside the repository")
    return real_root / rel, rel.as_posix()


@dataclass
class InitResult:
    root: Path
    created: list[str] = field(default_factory=list)   # paths made or changed, relative to root
    ci: object = None   # ci.CiResult when `init --ci` wrote (or kept) a workflow
    monitor: object = None   # ci.CiResult of the scheduled monitor workflow `init --ci` writes beside it

    @property
    def changed(self) -> bool:
        return bool(self.created)

    def to_dict(self) -> dict:
        return {"root": str(self.root), "changed": self.changed, "created": self.created,
                **({"ci": self.ci.to_dict()} if self.ci is not None else {}),
                **({"monitor": self.monitor.to_dict()} if self.monitor is not None else {})}


def init(start: Path | None = None) -> InitResult:
    """Make the current git repository a git-model repository. Idempotent.

    A repository whose eval stage is a matrix (every model x every eval set) gets a foreach of the
    same pairs, each depending on the settings that shape its results; its dvc.lock entries are
    carried over, so nothing that was up to date is run again. Metrics files are not touched."""
    root = gitrepo.find_root(start)
    result = InitResult(root=root)
    dvc_yaml = root / dvcyaml.DVC_YAML
    params_yaml = root / params.PARAMS_FILE
    dvc_lock = root / pairdeps.LOCK_FILE
    keeps = [root / d / ".gitkeep" for d in LAYOUT_DIRS]
    made_dvc = False
    with Snapshot(dvc_yaml, params_yaml, dvc_lock, *keeps) as snap:
        try:
            # read what is there before DVC writes anything: a broken dvc.yaml or
            # params.yaml must be refused with nothing staged
            existing = dvcyaml.load(root)
            if existing is not None:
                dvcyaml.eval_stage(existing, dvc_yaml)
            params.read(root)
            if not store.is_initialized(root):
                snap.add(root / ".dvcignore")
                store.init(root)
                made_dvc = True
                result.created += [".dvc/config", ".dvc/.gitignore", ".dvcignore"]
            data = dvcyaml.load(root)
            declared: list = []
            upgraded = False
            if data is None:
                atomic_write(dvc_yaml, dvcyaml.template())
                result.created.append(dvcyaml.DVC_YAML)
            else:
                before = dvcyaml.dump(data)
                if "artifacts" not in data:
                    from ruamel.yaml.comments import CommentedMap
                    data.insert(0, "artifacts", CommentedMap())
                stage = dvcyaml.eval_stage(data, dvc_yaml)
                declared = dvcyaml.pairs_of(stage, dvc_yaml)
                # a matrix, or a stage made before a key became a dependency (say, the model's
                # overrides): refreshed, and its dvc.lock entries carried over below
                upgraded = dvcyaml.is_matrix(stage) or not dvcyaml.stage_params_current(stage)
                if upgraded:
                    dvcyaml.with_pairs(data, declared, dvc_yaml)
                after = dvcyaml.dump(data)
                if after != before:
                    atomic_write(dvc_yaml, after)
                    result.created.append(dvcyaml.DVC_YAML)
            if not params_yaml.is_file():
                atomic_write(params_yaml, params.PARAMS_TEMPLATE)
                result.created.append(params.PARAMS_FILE)
            elif "eval" not in params.read(root):
                text = params_yaml.read_text("utf-8")
                atomic_write(params_yaml, text.rstrip("\n") + ("\n\n" if text.strip() else "") + params.PARAMS_TEMPLATE)
                result.created.append(params.PARAMS_FILE)
            from gitmodel import pairs

            filled = pairdeps.with_keys(root, [e for _, e in declared] + pairs.tracked_names(root),
                                        [m for m, _ in declared] + pairs.models_known(root))
            if filled is not None:
                atomic_write(params_yaml, filled)
                if params.PARAMS_FILE not in result.created:
                    result.created.append(params.PARAMS_FILE)
            if upgraded and dvc_lock.is_file():
                lock = pairdeps.migrated_lock(root, declared, pairs.stage_keys(root))
                if lock is not None:
                    atomic_write(dvc_lock, lock)
                    result.created.append(pairdeps.LOCK_FILE)
            for keep in keeps:
                if not keep.parent.is_dir() or not any(keep.parent.iterdir()):
                    keep.parent.mkdir(exist_ok=True)
                    atomic_write(keep, b"")
                    result.created.append(keep.relative_to(root).as_posix())
            if result.created:
                gitrepo.stage(root, result.created)
        except BaseException:
            if made_dvc:
                shutil.rmtree(root / ".dvc", ignore_errors=True)
                gitrepo.run_git(root, "rm", "-r", "--cached", "-q", "--ignore-unmatch", "--", ".dvc", ".dvcignore",
                                check=False)
            raise
    return result
