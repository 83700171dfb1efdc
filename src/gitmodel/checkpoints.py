"""A checkpoint named on the command line (a GGUF path, or a model at a revision) and the file holding
its bytes: the workspace file for the workspace, else the DVC cache object by md5, fetched from the
default DVC remote when the local cache lacks it. Never a checkout: the workspace is only read.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from gitmodel import dvcyaml, gitrepo, remotes, revisions, store
from gitmodel.errors import DvcError, GitModelError, ModelNotFound
from gitmodel.revisions import Revision


@dataclass
class Checkpoint:
    """A GGUF file to read, and what named it."""

    label: str                       # what the user typed, or the release it resolved to
    path: Path
    md5: str | None = None           # what DVC tracks for it (None for a plain path)
    model: str | None = None
    revision: Revision | None = None

    def to_dict(self) -> dict:
        return {"label": self.label, "path": str(self.path), "md5": self.md5, "model": self.model,
                "commit": self.revision.commit if self.revision else None}


def object_path(root: Path, md5: str, rel: str, what: str) -> Path:
    """A file holding the bytes with this md5: the local DVC cache object, else the workspace copy of
    ``rel`` when DVC tracks that md5 for it in the workspace, else the object fetched from the default
    remote. Raises ModelNotFound naming ``what`` and the md5 when no place has it."""
    cached = store.cache_path(root, md5)
    if cached.is_file():
        return cached
    workspace = root / rel
    if workspace.is_file() and store.tracked_md5s(root, [None], [rel], lenient=True)[None][rel] == md5:
        from gitmodel import project

        if project.hash_cache(root).md5(workspace) == md5:
            return workspace
    try:
        return remotes.fetch_object(root, md5)
    except DvcError as e:
        raise ModelNotFound(f"{what}: {rel} with md5 {md5} is in neither the local DVC cache, the workspace nor "
                            f"the DVC remote ({e.message})", hint=e.hint) from None


def tracked_md5(root: Path, rev: Revision, model: str) -> str:
    rel = dvcyaml.model_path(model)
    md5 = store.tracked_md5s(root, [rev.commit], [rel])[rev.commit][rel]
    if md5 is None:
        raise ModelNotFound(f"{rev.label}: model '{model}' has no tracked checkpoint ({rel}) at that revision",
                            hint=f"name a revision that tracks {rel}, or give the GGUF file's path")
    return md5


def locate(text: str, model: str | None = None, start: Path | None = None) -> Checkpoint:
    """The checkpoint ``text`` names: an existing file's path, else a revision (``chat@v1.2.0``,
    ``chat#prod``, ``HEAD~2``, ``workspace``) of ``model`` (implied by a registry reference, else the
    only model the revision tracks)."""
    as_path = Path(text)
    if as_path.is_file():
        return Checkpoint(text, as_path)
    try:
        root = gitrepo.find_root(start)
    except GitModelError:
        raise ModelNotFound(f"{text}: no such file, and not inside a git repository to read it as a revision",
                            hint="give the path of a GGUF file, or run it inside a git-model repository") from None
    rev = revisions.resolve(root, text)
    if model is not None and rev.model is not None and rev.model != model:
        raise GitModelError(f"{text} names model '{rev.model}', not '{model}'",
                            hint=f"drop --model, or name a version of {model}")
    return at(root, rev, model or rev.model or _only_model(root, rev))


def at(root: Path, rev: Revision, model: str) -> Checkpoint:
    """``model``'s checkpoint at a resolved revision."""
    rel = dvcyaml.model_path(model)
    if rev.is_workspace:
        path = root / rel
        if not path.is_file():
            raise ModelNotFound(f"{rel} is not in the workspace",
                                hint=f"get it with `dvc checkout {rel}.dvc`, or name a revision")
        entry = store.tracked(root, path)
        return Checkpoint(rev.label, path, entry.md5 if entry else None, model, rev)
    md5 = tracked_md5(root, rev, model)
    return Checkpoint(rev.label, object_path(root, md5, rel, f"model '{model}' at {rev.label}"), md5, model, rev)


def _only_model(root: Path, rev: Revision) -> str:
    from gitmodel import history

    reader = None if rev.is_workspace else gitrepo.ObjectReader(root)
    try:
        models = history.models_at(root, rev, reader)
    finally:
        if reader is not None:
            reader.close()
    if len(models) != 1:
        listed = f"it has {', '.join(models)}" if models else "it tracks none"
        raise GitModelError(f"{rev.label}: say which model's checkpoint to read ({listed})",
                            hint=f"pass --model NAME, or a registry reference such as {(models or ['MODEL'])[0]}@latest")
    return models[0]
