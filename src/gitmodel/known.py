"""The model and eval set names a repository knows, and "did you mean" for the others.

A misspelt name must be an error, never an empty result: `diff --evalset
sentimen` printing "No stored metrics" reads as success. A name is known when
anything in the workspace or at the revisions a command reads holds it: the
eval matrix and artifacts of dvc.yaml, a tracked file under models/ or
evalsets/, a metrics folder or file, a release or stage tag.
"""
from __future__ import annotations

import difflib
from pathlib import Path
from typing import Iterable

from gitmodel import dvcyaml, gitrepo
from gitmodel.errors import EvalSetNotFound, ModelNotFound


def _stems(names: Iterable[str], suffixes: tuple[str, ...]) -> set[str]:
    out = set()
    for name in names:
        for suffix in suffixes:
            if name.endswith(suffix):
                out.add(name[: -len(suffix)])
    return out


def models(root: Path, revs: Iterable[str | None] = (None,), tag_models: Iterable[str] = ()) -> list[str]:
    """Every model name known in the workspace or at ``revs`` (git revisions; None: the workspace)."""
    root = Path(root)
    found = set(tag_models)
    try:
        matrix_models, _ = dvcyaml.matrix(root)
        found.update(matrix_models)
        found.update(dvcyaml.artifacts(root))
    except Exception:   # a broken dvc.yaml is another command's error; names come from elsewhere too
        pass
    for rev in revs:
        found |= _stems(gitrepo.list_dir_at(root, rev, dvcyaml.MODELS_DIR), (".gguf.dvc", ".gguf"))
        found |= set(_folders_at(root, rev, dvcyaml.METRICS_DIR))
    return sorted(found)


def evalsets(root: Path, revs: Iterable[str | None] = (None,), model: str | None = None) -> list[str]:
    """Every eval set name known in the workspace or at ``revs``: tracked files and stored results."""
    root = Path(root)
    found: set[str] = set()
    try:
        found.update(dvcyaml.matrix(root)[1])
    except Exception:
        pass
    for rev in revs:
        found |= _stems(gitrepo.list_dir_at(root, rev, dvcyaml.EVALSETS_DIR), (".jsonl.dvc", ".jsonl"))
        folders = [model] if model else _folders_at(root, rev, dvcyaml.METRICS_DIR)
        for folder in folders:
            names = gitrepo.list_dir_at(root, rev, f"{dvcyaml.METRICS_DIR}/{folder}")
            found |= {n[: -len(".json")] for n in names if dvcyaml.is_result_file(n)}
    return sorted(found)


def _folders_at(root: Path, rev: str | None, folder: str) -> list[str]:
    if rev in (None, gitrepo.WORKSPACE):
        p = Path(root) / folder
        return sorted(x.name for x in p.iterdir() if x.is_dir()) if p.is_dir() else []
    import subprocess

    proc = subprocess.run(["git", "-C", str(root), "ls-tree", "-d", "--name-only", "-z", f"{rev}:{folder}"],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    if proc.returncode != 0:
        return []
    return sorted(n for n in proc.stdout.decode("utf-8", "surrogateescape").split("\0") if n)


# How near a name must be to be suggested (difflib's ratio): low enough to catch a dropped or swapped
# letter in a short name ("sentimnt", "mian"), high enough not to suggest unrelated names.
CUTOFF = 0.5


def near(name: str, candidates: Iterable[str], n: int = 3) -> list[str]:
    """The known names closest to ``name``, nearest first (never ``name`` itself)."""
    return difflib.get_close_matches(str(name), sorted({str(c) for c in candidates} - {str(name)}), n=n,
                                     cutoff=CUTOFF)


def close(name: str, candidates: Iterable[str], n: int = 3) -> str:
    """``did you mean 'a', 'b' or 'c'?`` for the names close to ``name``, or "" when none is. The one
    wording of every "did you mean" the commands say."""
    names = [repr(c) for c in near(name, candidates, n)]
    if not names:
        return ""
    return "did you mean " + (", ".join(names[:-1]) + " or " + names[-1] if len(names) > 1 else names[0]) + "?"


def suggestion(name: str, candidates: Iterable[str], n: int = 3) -> str:
    """``; did you mean 'x'?`` to append to a message, or nothing when no known name is close."""
    text = close(name, candidates, n)
    return "; " + text if text else ""


def did_you_mean(name: str, known: Iterable[str]) -> str:
    """``did you mean 'x'?`` for the closest known names, or the list of known ones."""
    known = sorted(set(known))
    return close(name, known) or (f"known: {', '.join(known)}" if known else "there are none yet")


def check_model(root: Path, name: str, known: Iterable[str]) -> None:
    """Raise ModelNotFound (exit 3) when ``name`` is not among ``known``, with the closest names."""
    known = list(known)
    if name not in known:
        raise ModelNotFound(f"unknown model '{name}': {did_you_mean(name, known)}",
                            hint=f"track a checkpoint with `git model add {dvcyaml.model_path(name)}`"
                            if not known else "check the spelling (`git model status` lists the models)")


def check_evalset(root: Path, name: str, known: Iterable[str]) -> None:
    """Raise EvalSetNotFound (exit 3) when ``name`` is not among ``known``, with the closest names."""
    known = list(known)
    if name not in known:
        raise EvalSetNotFound(f"unknown eval set '{name}': {did_you_mean(name, known)}",
                              hint=f"track one with `git model evalset add {dvcyaml.evalset_path(name)}`"
                              if not known else "check the spelling (the eval sets are evalsets/<name>.jsonl)")
