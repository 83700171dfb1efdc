"""``git model add`` and ``git model evalset add``: validate, then track with DVC.

Order of work, so that a refused file leaves no trace: every check (path,
name, GGUF header, eval set lines, lineage inputs) runs before DVC or any file
is touched; the files DVC and we then write are snapshotted and restored if
anything fails; git staging comes last.
"""
from __future__ import annotations

import os
import shlex
from dataclasses import dataclass, field
from pathlib import Path

from gitmodel import dvcyaml, evalsets, gguf, gitrepo, lineage, loadcheck, pairs, params, project, refs, store
from gitmodel.errors import InvalidPath
from gitmodel.fsutil import Snapshot


@dataclass
class AddResult:
    name: str
    path: str                 # relative to the repository root
    md5: str
    dvc_file: str
    meta: dict = field(default_factory=dict)
    previous_md5: str | None = None
    staged: list[str] = field(default_factory=list)
    previous_meta: dict | None = None
    evalsets: list[str] = field(default_factory=list)   # the eval sets the model is evaluated on

    @property
    def status(self) -> str:
        if self.previous_md5 is None:
            return "added"
        if self.previous_md5 != self.md5:
            return "updated"
        return "unchanged" if self.previous_meta in (None, self.meta) else "lineage updated"

    def to_dict(self) -> dict:
        return {"name": self.name, "path": self.path, "md5": self.md5, "status": self.status,
                "dvc_file": self.dvc_file, "meta": self.meta, "evalsets": self.evalsets, "staged": self.staged}


def _checked_target(root: Path, user_path, name: str | None, folder: str, suffix: str, what: str):
    absolute, rel = project.resolve_inside(root, user_path, what)
    shown = project.shorten(user_path)
    try:
        exists, is_file = absolute.exists(), absolute.is_file()
    except OSError as e:      # e.g. a path longer than the file system allows
        raise InvalidPath(f"{what} {shown}: {e.strerror}", hint="give a shorter path") from None
    if not exists:
        raise InvalidPath(f"{what} {shown}: no such file",
                          hint=f"paths are read from the current directory ({os.getcwd()}), as git reads them")
    if not is_file:
        raise InvalidPath(f"{what} {shown} is not a regular file", hint=f"give the path of one {suffix} file")
    name = name if name is not None else Path(rel).name[: -len(suffix)] if rel.endswith(suffix) else Path(rel).stem
    refs.check_name(name, "model name" if folder == dvcyaml.MODELS_DIR else "eval set name")
    expected = f"{folder}/{name}{suffix}"
    if rel != expected:
        # The eval matrix finds files by name (models/<name>.gguf), so the
        # layout is a contract, not a suggestion. The hint's paths are the
        # user's (relative to the current directory), quoted for a shell.
        here = Path(os.getcwd())
        source, target = (shlex.quote(os.path.relpath(root / p, here)) for p in (rel, expected))
        raise InvalidPath(f"{what} {rel} must live at {expected} (git-model finds {folder} by name)",
                          hint=f"move it: git mv {source} {target}  (or mv, if git does not track it yet)")
    return absolute, rel, name


def add_model(user_path, *, name: str | None = None, dataset=None, param_pairs=(), params_file=None,
              base_model: str | None = None, training_duration: str | None = None,
              evalset_names=(), trained_at: str | None = None, start: Path | None = None) -> AddResult:
    """Track a checkpoint. It is evaluated on ``evalset_names`` (tracked eval sets) besides the ones it
    already has; without them, a new model joins the eval sets every other model has (pairs.plan_model)."""
    root = project.open_root(start)
    absolute, rel, name = _checked_target(root, user_path, name, dvcyaml.MODELS_DIR, ".gguf", "model")
    for evalset in evalset_names:
        refs.check_name(evalset, "eval set name")
    pairs.check_evalsets(root, evalset_names)
    info = gguf.read_info(absolute)                     # before anything else touches the file
    hashes = project.hash_cache(root)
    loadcheck.ensure_loads(absolute, md5=hashes.md5(absolute), root=root)   # in a child: a crash is refused
    lineage_meta: dict = {}
    if dataset is not None:
        lineage_meta["dataset"] = lineage.dataset_entry(root, Path(dataset), hashes.md5)
    hyper = lineage.parse_params(list(param_pairs), Path(params_file) if params_file else None)
    if hyper:
        lineage_meta["params"] = hyper
    if base_model:
        lineage_meta["base_model"] = base_model
    if training_duration is not None:
        lineage_meta["training_duration_s"] = lineage.parse_duration(training_duration)
    previous = store.tracked(root, absolute)
    # when training ended (retrain-check weighs domain shifts against it): given, else kept for the same
    # weights, else the time they are added
    kept = ((previous.meta or {}).get("lineage") or {}).get("trained_at") \
        if previous is not None and previous.md5 == hashes.md5(absolute) else None
    lineage_meta["trained_at"] = lineage.parse_trained_at(trained_at) if trained_at else kept or lineage.now_utc()
    meta = {"lineage": lineage_meta, "gguf": info.to_meta()}

    if previous is not None and previous.source.name == store.LOCK_FILE:
        raise InvalidPath(f"model {rel} is an output of a stage in dvc.yaml (recorded in dvc.lock)",
                          hint="`dvc repro` tracks it; git model reads its lineage from dvc.lock")
    data = dvcyaml.load(root)
    current = dvcyaml.pairs_of(dvcyaml.eval_stage(data, root / dvcyaml.DVC_YAML), root / dvcyaml.DVC_YAML)
    tracked_sets = pairs.tracked_names(root) if not evalset_names else []
    new_pairs, model_evalsets = pairs.plan_model(current, tracked_sets, name, list(evalset_names))
    plan = pairs.write_plan(root, dvcyaml.with_model(data, name, meta, root / dvcyaml.DVC_YAML), new_pairs)
    dvc_file = Path(str(absolute) + ".dvc")
    gitignore = absolute.parent / ".gitignore"
    with Snapshot(dvc_file, gitignore, root / dvcyaml.DVC_YAML, root / params.PARAMS_FILE, root / "dvc.lock"):
        store.track(root, absolute)
        store.set_meta(dvc_file, meta)
        written = pairs.apply(root, plan)
        tracked = store.tracked(root, absolute)
        staged = [p for p in (dvc_file, gitignore, *written) if p.exists()]
        gitrepo.stage(root, staged)
    return AddResult(name=name, path=rel, md5=tracked.md5, dvc_file=dvc_file.relative_to(root).as_posix(),
                     meta=meta, previous_md5=previous.md5 if previous else None,
                     previous_meta=previous.meta if previous else None,
                     staged=[p.relative_to(root).as_posix() for p in staged], evalsets=model_evalsets)


@dataclass
class EvalSetResult(AddResult):
    examples: int = 0
    classification: int = 0
    categories: list[str] = field(default_factory=list)
    models: list[str] = field(default_factory=list)      # the models evaluated on it
    joined: list[str] = field(default_factory=list)      # the models this command paired with it
    for_every_model: bool = False                         # added without --for

    def to_dict(self) -> dict:
        return {"name": self.name, "path": self.path, "md5": self.md5, "status": self.status,
                "examples": self.examples, "classification": self.classification,
                "categories": self.categories, "models": self.models, "joined": self.joined,
                "for_every_model": self.for_every_model, "staged": self.staged}


def add_evalset(user_path, *, name: str | None = None, for_models=(), start: Path | None = None) -> EvalSetResult:
    """Track an eval set, evaluated on ``for_models`` (tracked models; none: every model)."""
    root = project.open_root(start)
    known_models = pairs.models_known(root)
    for model in for_models:
        refs.check_name(model, "model name")
    pairs.check_models(root, for_models, known_models)
    absolute, rel, name = _checked_target(root, user_path, name, dvcyaml.EVALSETS_DIR, ".jsonl", "eval set")
    cap = params.eval_params(root)["max_line_bytes"]
    examples = evalsets.load(absolute, max_line_bytes=cap)   # every line validated first
    previous = store.tracked(root, absolute)
    data = dvcyaml.load(root)
    current = dvcyaml.pairs_of(dvcyaml.eval_stage(data, root / dvcyaml.DVC_YAML), root / dvcyaml.DVC_YAML)
    new_pairs, joined = pairs.plan_evalset(current, known_models, name, list(for_models))
    dvc_file = Path(str(absolute) + ".dvc")
    gitignore = absolute.parent / ".gitignore"
    with Snapshot(dvc_file, gitignore, root / dvcyaml.DVC_YAML, root / params.PARAMS_FILE, root / "dvc.lock"):
        store.track(root, absolute)
        # after tracking: the params.yaml keys of a pair are checked against tracked eval sets
        written = pairs.apply(root, pairs.write_plan(root, data, new_pairs, extra_evalsets=[name]))
        tracked = store.tracked(root, absolute)
        staged = [p for p in (dvc_file, gitignore, *written) if p.exists()]
        gitrepo.stage(root, staged)
    return EvalSetResult(
        name=name, path=rel, md5=tracked.md5, dvc_file=dvc_file.relative_to(root).as_posix(),
        previous_md5=previous.md5 if previous else None,
        staged=[p.relative_to(root).as_posix() for p in staged],
        examples=len(examples), classification=sum(1 for e in examples if e.is_classification),
        categories=sorted({e.category for e in examples if e.category}),
        models=[m for m, e in new_pairs if e == name], joined=joined, for_every_model=not for_models,
    )
