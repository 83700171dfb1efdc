"""The layout of a git-model repository, ``git model init``, and safe paths."""
from __future__ import annotations

import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from gitmodel import dvcyaml, gitrepo, params, store
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


def resolve_inside(root: Path, user_path: str | Path, what: str = "path") -> tuple[Path, str]:
    """(absolute path, path relative to root) of a user-given path, refusing escapes.

    Refused: ``..`` anywhere, absolute paths outside the repository, and any
    symlink on the way (a symlinked folder could point anywhere on disk, and
    DVC would then write into it).
    """
    raw = Path(user_path)
    if ".." in raw.parts:
        raise InvalidPath(f"{what} {user_path}: '..' is not allowed; give a path inside the repository")
    absolute = raw if raw.is_absolute() else Path(os.getcwd()) / raw
    absolute = Path(os.path.normpath(absolute))
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
        if current.is_symlink():
            kind = "a symlink" if current == real_root / rel else "under a symlinked folder"
            raise InvalidPath(f"{what} {user_path} is {kind} ({current.relative_to(real_root)} -> {os.readlink(current)})",
                              hint="use the real path inside the repository")
    return real_root / rel, rel.as_posix()


@dataclass
class InitResult:
    root: Path
    created: list[str] = field(default_factory=list)   # paths made or changed, relative to root

    @property
    def changed(self) -> bool:
        return bool(self.created)


def init(start: Path | None = None) -> InitResult:
    """Make the current git repository a git-model repository. Idempotent."""
    root = gitrepo.find_root(start)
    result = InitResult(root=root)
    dvc_yaml = root / dvcyaml.DVC_YAML
    params_yaml = root / params.PARAMS_FILE
    keeps = [root / d / ".gitkeep" for d in LAYOUT_DIRS]
    made_dvc = False
    with Snapshot(dvc_yaml, params_yaml, *keeps) as snap:
        try:
            # read what is there before DVC writes anything: a broken dvc.yaml or
            # params.yaml must be refused with nothing staged
            existing = dvcyaml.load(root)
            if existing is not None:
                dvcyaml._eval_stage(existing, dvc_yaml)
            params.read(root)
            if not store.is_initialized(root):
                snap.add(root / ".dvcignore")
                store.init(root)
                made_dvc = True
                result.created += [".dvc/config", ".dvc/.gitignore", ".dvcignore"]
            data = dvcyaml.load(root)
            if data is None:
                atomic_write(dvc_yaml, dvcyaml.TEMPLATE)
                result.created.append(dvcyaml.DVC_YAML)
            else:
                before = dvcyaml.dump(data)
                if "artifacts" not in data:
                    from ruamel.yaml.comments import CommentedMap
                    data.insert(0, "artifacts", CommentedMap())
                dvcyaml._eval_stage(data, dvc_yaml)
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
