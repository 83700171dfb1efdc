"""``git model pairs``: the declared model x eval set pairs with their metrics and whether they are
stale, the orphaned metrics of pairs no longer declared; ``pairs remove`` and ``pairs prune``.

A pair is stale when its metrics do not describe the tracked weights, eval set or result-shaping
params (provenance.stale_at, as every command says it), or when a params.yaml key its dvc.lock
entry records has changed since (what ``dvc status`` reports: an eval set's override is such a key).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from gitmodel import dvcyaml, gitrepo, pairs, project
from gitmodel.errors import GatedEvalSet, InvalidPath


@dataclass
class PairRow:
    model: str
    evalset: str
    metrics: str                 # the metrics file, relative to the root
    present: bool                # the metrics file is in the workspace
    stale: bool                  # True also when there are no metrics yet: `dvc repro` would run it
    reasons: list[str] = field(default_factory=list)

    @property
    def state(self) -> str:
        return "missing" if not self.present else "stale" if self.stale else "up to date"

    def to_dict(self) -> dict:
        return {"model": self.model, "evalset": self.evalset, "stage": None, "metrics": self.metrics,
                "present": self.present, "state": self.state, "stale": self.stale, "reasons": self.reasons}


@dataclass
class Orphan:
    model: str
    evalset: str
    paths: list[str]             # the metrics file and its outputs file, those that exist

    def to_dict(self) -> dict:
        return {"model": self.model, "evalset": self.evalset, "paths": self.paths}


@dataclass
class PairsTable:
    pairs: list[PairRow]
    orphans: list[Orphan]
    stage_names: dict = field(default_factory=dict)   # (model, evalset) -> eval@<key>

    def to_dict(self) -> dict:
        rows = []
        for row in self.pairs:
            d = row.to_dict()
            d["stage"] = self.stage_names.get((row.model, row.evalset))
            rows.append(d)
        return {"pairs": rows, "orphans": [o.to_dict() for o in self.orphans]}


def orphans(root: Path, declared: list[pairs.Pair]) -> list[Orphan]:
    """Metrics in the workspace of pairs dvc.yaml does not declare."""
    base = Path(root) / dvcyaml.METRICS_DIR
    found = []
    for folder in sorted(p for p in base.iterdir() if p.is_dir()) if base.is_dir() else []:
        for f in sorted(folder.glob("*.json")):
            pair = (folder.name, f.stem)
            if dvcyaml.is_result_file(f.name) and pair not in declared:
                paths = [dvcyaml.metrics_path(*pair)]
                if (Path(root) / dvcyaml.outputs_path(*pair)).is_file():
                    paths.append(dvcyaml.outputs_path(*pair))
                found.append(Orphan(*pair, paths))
    return found


def staleness(root: Path, declared: list[pairs.Pair]) -> dict[pairs.Pair, list[str]]:
    """pair -> why its workspace metrics are stale ([] when up to date); pairs without metrics left out."""
    from gitmodel import jsonio, params, provenance, revisions, store

    root = Path(root)
    docs = {}
    for pair in declared:
        path = root / dvcyaml.metrics_path(*pair)
        if path.is_file():
            try:
                docs[pair] = jsonio.loads(path.read_bytes())
            except (ValueError, OSError) as e:
                docs[pair] = e
    wanted = [p for pair, doc in docs.items() if isinstance(doc, dict) for p in provenance.tracked_paths(doc)]
    tracked = store.tracked_md5s(root, [None], wanted, lenient=True)[None]
    workspace = revisions.Revision(gitrepo.WORKSPACE, None)
    current = params.eval_params(root)
    # params.yaml holds every key a pair depends on, so its values are the merged ones
    from_lock = pairs.lock_changes(root, pairs.workspace(root), {"eval": current})
    found = {}
    for pair, doc in docs.items():
        if not isinstance(doc, dict):
            found[pair] = [f"not a readable git-model metrics file ({doc})"]
            continue
        reasons = provenance.stale_at(root, workspace, doc, with_params=True, tracked=tracked, eval_params=current)
        found[pair] = [str(r) for r in reasons] + pairs.lock_reason(reasons, from_lock.get(pair))
    return found


def table(start: Path | None = None) -> PairsTable:
    """``git model pairs``: every declared pair, its metrics and staleness, and the orphaned metrics.
    Raises when a pair names an eval set that is not tracked or a model that is not."""
    root = project.open_root(start)
    declared = pairs.declared(root)
    pairs.check_declared(root, declared)
    stale = staleness(root, declared)
    rows = []
    for pair in declared:
        present = pair in stale
        reasons = stale.get(pair, ["not evaluated yet: `dvc repro` runs it"])
        rows.append(PairRow(*pair, dvcyaml.metrics_path(*pair), present, bool(reasons), reasons))
    names = {pair: f"{dvcyaml.EVAL_STAGE}@{key}" for pair, key in pairs.stage_keys(root).items()}
    return PairsTable(rows, orphans(root, declared), names)


# ----------------------------------------------------------------------------- changes


@dataclass
class RemoveResult:
    evalset: str
    removed: list[str]          # the models no longer evaluated on it
    staged: list[str]
    orphaned: list[str]         # their metrics, now orphaned (kept until `pairs prune`)

    def to_dict(self) -> dict:
        return {"evalset": self.evalset, "removed": self.removed, "orphaned": self.orphaned, "staged": self.staged}


def _gated_on(root: Path, model: str, evalset: str) -> list[str]:
    """The stages of ``model`` whose release holds results on ``evalset`` (the gate compares on it)."""
    from gitmodel import registry as registry_mod
    from gitmodel import results
    from gitmodel.revisions import Revision

    reg = registry_mod.load(root)
    found = []
    for stage, event in sorted(reg.holders(model).items()):
        if event.version is None:
            continue
        rev = Revision(f"{model}@{event.version}", event.commit)
        if results.results_at(root, rev, model=model, evalset=evalset, validate=False):
            found.append(f"{model}#{stage} ({model}@{event.version})")
    return found


def remove(evalset: str, for_models=(), force: bool = False, start: Path | None = None) -> RemoveResult:
    """Stop evaluating ``for_models`` (none: every model) on ``evalset``. Refuses when a model's stage
    holder was released with results on it (the gate compares on them), unless ``force``."""
    from gitmodel import params, refs
    from gitmodel.fsutil import Snapshot
    from gitmodel.locking import repository_lock

    root = project.open_root(start)
    refs.check_name(evalset, "eval set name")
    declared = pairs.declared(root)
    on_it = [m for m, e in declared if e == evalset]
    if not on_it:
        from gitmodel.errors import EvalSetNotFound
        from gitmodel.known import did_you_mean

        raise EvalSetNotFound(f"no model is evaluated on eval set '{evalset}': "
                              f"{did_you_mean(evalset, {e for _, e in declared})}",
                              hint="`git model pairs` lists the pairs")
    for model in for_models:
        refs.check_name(model, "model name")
    if for_models:
        pairs.check_models(root, for_models, on_it)
    models = list(dict.fromkeys(for_models)) or on_it
    if not force:
        for model in models:
            gated = _gated_on(root, model, evalset)
            if gated:
                raise GatedEvalSet(
                    f"the gate of model '{model}' compares on eval set '{evalset}': {', '.join(gated)} "
                    f"was released with {dvcyaml.metrics_path(model, evalset)}",
                    hint=f"keep the pair, or pass --force to stop gating {model} on {evalset}")
    new = [p for p in declared if not (p[1] == evalset and p[0] in models)]
    with repository_lock(root / project.STATE_DIR):
        data = dvcyaml.load(root)
        plan = pairs.write_plan(root, data, new)
        with Snapshot(root / dvcyaml.DVC_YAML, root / params.PARAMS_FILE, root / "dvc.lock"):
            written = pairs.apply(root, plan)
            gitrepo.stage(root, written)
    orphaned = [dvcyaml.metrics_path(m, evalset) for m in models if (root / dvcyaml.metrics_path(m, evalset)).is_file()]
    return RemoveResult(evalset, models, [p.relative_to(root).as_posix() for p in written], orphaned)


@dataclass
class PruneResult:
    removed: list[str]

    def to_dict(self) -> dict:
        return {"removed": self.removed}


def prune(start: Path | None = None) -> PruneResult:
    """Remove the orphaned metrics (``git rm``: staged, recoverable from git). Refuses, naming it, a
    file git does not hold or that differs from what git holds, before removing anything."""
    from gitmodel.locking import repository_lock

    root = project.open_root(start)
    with repository_lock(root / project.STATE_DIR):
        paths = [p for o in orphans(root, pairs.declared(root)) for p in o.paths]
        if not paths:
            return PruneResult([])
        for code, path in gitrepo.status(root, paths):
            what = "git does not hold" if code == "??" else "differ from what git holds"
            raise InvalidPath(f"{path}: orphaned metrics that {what}; not removed",
                              hint=f"commit it first (git add {path}), or move it away yourself")
        gitrepo.run_git(root, "rm", "-q", "--", *paths)
    return PruneResult(paths)
