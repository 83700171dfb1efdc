"""What the registry holds over time: the data behind ``git model log`` and ``git model show``.

Read-only and fast: tags come from one ``git for-each-ref`` (registry.load),
every release's metrics from one ``git cat-file --batch`` (results.results_at_many),
and nothing here imports dvc, numpy or jsonschema on the way (metrics blobs
are validated once and remembered by sha). The release record that
``git model release`` writes into a tag message is read with
:func:`gitmodel.refs.parse_release_message`, next to the function that writes it.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from gitmodel import dvcyaml, gitrepo, known, metricspecs, provenance, refs, revisions, store
from gitmodel import registry as registry_mod
from gitmodel import results as results_mod
from gitmodel.errors import GitModelError, ModelNotFound
from gitmodel.metricdiff import is_number
from gitmodel.refs import parse_release_message
from gitmodel.registry import Registry, Release
from gitmodel.results import Result
from gitmodel.revisions import Revision

# ----------------------------------------------------------------------------- headline metrics


def _dotted(metrics: dict, key: str):
    value = metrics
    for part in key.split("."):
        if not isinstance(value, dict) or part not in value:
            return None
        value = value[part]
    return value


def headline(metrics: dict) -> dict:
    """The headline metrics (:func:`metricspecs.headline_keys`) present in a metrics dict, in their order,
    e.g. ``{"n": 400, "accuracy": 0.75}``."""
    return {key: value for key in metricspecs.headline_keys() if is_number(value := _dotted(metrics, key))}


def metric_value(metrics: dict, key: str):
    """The number at a dotted key (``labels.positive.fpr``), or None."""
    value = _dotted(metrics, key)
    return value if is_number(value) else None


# ----------------------------------------------------------------------------- log


@dataclass
class LogEntry:
    """One release, as ``git model log`` shows it."""

    release: Release
    stages: list[str]
    metrics: dict[str, dict]          # eval set -> headline metrics
    deprecated: bool = False

    @property
    def user_message_and_record(self) -> tuple[str, dict | None]:
        r = self.release
        return parse_release_message(r.message, r.model, r.version)

    def to_dict(self) -> dict:
        r = self.release
        message, record = self.user_message_and_record
        return {
            "model": r.model, "version": str(r.version), "tag": r.tag, "commit": r.commit,
            "date": iso_date(r.time), "tagger": r.tagger, "stages": self.stages,
            "deregistered": r.deregistered, "deprecated": self.deprecated,
            "md5": (record or {}).get("md5"), "message": message, "metrics": self.metrics,
        }


@dataclass
class ModelLog:
    model: str
    deprecated: bool
    total: int                        # releases in all, before -n
    entries: list[LogEntry] = field(default_factory=list)


def iso_date(timestamp: int) -> str:
    from datetime import datetime, timezone

    return datetime.fromtimestamp(timestamp, timezone.utc).isoformat().replace("+00:00", "Z")


def known_models(root: Path, reg: Registry) -> list[str]:
    """Models named by tags, by dvc.yaml's artifacts, by models/*.gguf.dvc or metrics/ in the workspace."""
    names = set(reg.models())
    try:
        names |= {n for n in dvcyaml.artifacts(root) if isinstance(n, str)}
    except GitModelError:
        pass
    models_dir = Path(root) / dvcyaml.MODELS_DIR
    if models_dir.is_dir():
        names |= {p.name[: -len(".gguf.dvc")] for p in models_dir.glob("*.gguf.dvc")}
    metrics_dir = Path(root) / dvcyaml.METRICS_DIR
    if metrics_dir.is_dir():
        names |= {p.name for p in metrics_dir.iterdir() if p.is_dir()}
    return sorted(names)


def unknown_model(root: Path, reg: Registry, model: str) -> ModelNotFound:
    names = known_models(root, reg)
    hint = known.close(model, names) or (
        f"models here: {', '.join(names)}" if names else "track one with `git model add models/<name>.gguf`")
    return ModelNotFound(f"unknown model '{model}': no release, artifact, checkpoint or metrics by that name",
                         hint=hint)


def releases_for(root: Path, reg: Registry, model: str, purpose: str,
                 error: type[GitModelError] = GitModelError) -> list:
    """The active releases of ``model``, oldest first; an error (of ``error``'s type when the model is
    known) saying it has none to ``purpose``, or that no model has that name."""
    releases = reg.active_releases(model)
    if releases:
        return releases
    if model not in known_models(root, reg):
        raise unknown_model(root, reg, model)
    raise error(f"model '{model}' has no releases to {purpose}",
                hint=f"release one with `git model release {model} v1.0.0`")


def log(root: Path, model: str | None = None, limit: int | None = None) -> list[ModelLog]:
    """Releases per model, newest version first (SemVer order), with the stages each holds and
    its headline metrics per eval set, read at each release commit through one ``cat-file``."""
    root = Path(root)
    if limit is not None and limit < 1:
        raise GitModelError(f"-n {limit}: give a number of releases of 1 or more")
    reg = registry_mod.load(root)
    if model is not None:
        refs.check_name(model)
        if model not in reg.models() and model not in known_models(root, reg):
            raise unknown_model(root, reg, model)
    models = [model] if model is not None else [m for m in reg.models() if reg.releases.get(m)]
    logs = []
    with gitrepo.ObjectReader(root) as reader:
        for m in models:
            releases = reg.releases.get(m, [])[::-1]
            shown = releases[:limit] if limit else releases
            revs = [Revision.of(r) for r in shown]
            results = results_mod.results_at_many(root, revs, model=m, reader=reader)
            by_version: dict[refs.Version, list[str]] = {}
            for stage, event in reg.holders(m).items():
                if event.version is not None:
                    by_version.setdefault(event.version, []).append(stage)
            deprecated = m in reg.deprecated
            entries = [LogEntry(r, sorted(by_version.get(r.version, [])) if not r.deregistered else [],
                                {res.evalset: headline(res.doc["metrics"]) for res in found}, deprecated)
                       for r, found in zip(shown, results)]
            logs.append(ModelLog(m, deprecated, len(releases), entries))
    return logs


# ----------------------------------------------------------------------------- a model at a revision


@dataclass
class ModelState:
    """What a revision holds for one model: the tracked checkpoint, its lineage, its results."""

    model: str
    path: str
    md5: str | None = None
    size: int | None = None
    tracked_by: str | None = None     # "models/<m>.gguf.dvc", "dvc.lock", or None when not tracked
    lineage: dict = field(default_factory=dict)
    gguf: dict = field(default_factory=dict)
    results: list[Result] = field(default_factory=list)
    release: Release | None = None
    stages: list[str] = field(default_factory=list)
    record: dict | None = None        # the record in the release tag's message
    message: str = ""                 # the user's part of the release tag's message
    stale: dict = field(default_factory=dict)   # eval set -> [provenance.StaleReason], for stale results only

    def to_dict(self) -> dict:
        return {
            "model": self.model, "path": self.path, "md5": self.md5, "size": self.size,
            "tracked_by": self.tracked_by, "lineage": self.lineage, "gguf": self.gguf,
            "release": None if self.release is None else {
                "version": str(self.release.version), "tag": self.release.tag, "date": iso_date(self.release.time),
                "tagger": self.release.tagger, "message": self.message, "deregistered": self.release.deregistered},
            "stages": self.stages,
            "results": {r.evalset: {"path": r.path, "evalset": r.doc.get("evalset"), "params": r.doc.get("params"),
                                    "runner": r.doc.get("runner"), "model_md5": (r.doc.get("model") or {}).get("md5"),
                                    "metrics": r.doc["metrics"],
                                    "stale": [reason.to_dict() for reason in self.stale.get(r.evalset, [])]}
                        for r in self.results},
        }


def tracked_at(root: Path, rev: Revision, models: list[str],
               reader: gitrepo.ObjectReader | None = None) -> dict[str, ModelState]:
    """model -> its checkpoint at ``rev``, as :func:`gitmodel.store.tracked_at` reads it, with its lineage."""
    root = Path(root)
    paths = [dvcyaml.model_path(m) for m in models]
    outs = store.tracked_at(root, rev.commit, paths, reader)
    states = {}
    for m, rel in zip(models, paths):
        state = ModelState(m, rel)
        out = outs[rel]
        if out is not None:
            state.md5, state.size = out.md5, out.size
            state.tracked_by = store.LOCK_FILE if out.source.name == store.LOCK_FILE else rel + ".dvc"
            state.lineage = dict(out.meta.get("lineage") or {})
            state.gguf = dict(out.meta.get("gguf") or {})
        states[m] = state
    return states


def models_at(root: Path, rev: Revision, reader: gitrepo.ObjectReader | None = None) -> list[str]:
    """Every model a revision knows: a checkpoint under models/ (a .dvc file or a dvc.lock out) or results under metrics/."""
    from gitmodel import store

    root = Path(root)
    names: set[str] = set()
    if rev.is_workspace:
        folder = root / dvcyaml.MODELS_DIR
        if folder.is_dir():
            names |= {p.name[: -len(".gguf.dvc")] for p in folder.glob("*.gguf.dvc")}
        metrics = root / dvcyaml.METRICS_DIR
        if metrics.is_dir():
            names |= {p.name for p in metrics.iterdir() if p.is_dir()}
        lock = root / store.LOCK_FILE
        lock_text = lock.read_text("utf-8") if lock.is_file() else None
    else:
        models_tree, metrics_tree, lock_blob = reader.read_many(
            [f"{rev.commit}:{dvcyaml.MODELS_DIR}", f"{rev.commit}:{dvcyaml.METRICS_DIR}", f"{rev.commit}:{store.LOCK_FILE}"])
        if models_tree and models_tree[0] == "tree":
            names |= {n[: -len(".gguf.dvc")] for mode, n, _ in gitrepo.tree_entries(models_tree[1])
                      if n.endswith(".gguf.dvc")}
        if metrics_tree and metrics_tree[0] == "tree":
            names |= {n for mode, n, _ in gitrepo.tree_entries(metrics_tree[1]) if mode == "40000"}
        lock_text = lock_blob[1].decode("utf-8", "replace") if lock_blob and lock_blob[0] == "blob" else None
    if lock_text is not None:
        prefix = f"{dvcyaml.MODELS_DIR}/"
        for name, entry in store.lock_entries(lock_text, root / store.LOCK_FILE, (prefix,)).items():
            for out in entry.get("outs") or []:
                path = str(out.get("path", ""))
                if path.startswith(prefix) and path.endswith(".gguf") and "/" not in path[len(prefix):]:
                    names.add(path[len(prefix): -len(".gguf")])
    return sorted(n for n in names if refs.NAME_RE.match(n))


@dataclass
class Shown:
    revision: Revision
    models: list[ModelState]

    def to_dict(self) -> dict:
        rev = self.revision
        return {"revision": rev.text, "commit": rev.commit, "workspace": rev.is_workspace,
                "models": [m.to_dict() for m in self.models]}


def show(root: Path, ref: str) -> Shown:
    """Metrics (every eval set) and lineage at a revision: of its model for a registry
    reference (``chat@v1.2.0``, ``chat@latest``, ``chat#prod``), of every model otherwise."""
    root = Path(root)
    reg = registry_mod.load(root)
    rev = revisions.resolve(root, ref, reg)
    reader = None if rev.is_workspace else gitrepo.ObjectReader(root)
    try:
        models = [rev.model] if rev.model else models_at(root, rev, reader)
        states = tracked_at(root, rev, models, reader)
        results: dict[str, list[Result]] = {m: [] for m in models}
        for result in results_mod.results_at(root, rev, model=rev.model, reader=reader):
            results.setdefault(result.model, []).append(result)
        found = [r for rs in results.values() for r in rs]
        tracked = store.tracked_md5s(root, [rev.commit], [p for r in found for p in provenance.tracked_paths(r.doc)],
                                     reader)[rev.commit]
        stale = {(r.model, r.evalset): provenance.stale_at(root, rev, r.doc, tracked=tracked) for r in found}
    finally:
        if reader is not None:
            reader.close()
    shown = []
    for m in models:
        state = states[m]
        state.results = results[m]
        state.stale = {r.evalset: stale[m, r.evalset] for r in state.results if stale[m, r.evalset]}
        if not rev.is_workspace:
            state.release = rev.release if rev.model == m and rev.release else reg.release_at(m, rev.commit)
            if state.release is not None:
                state.stages = reg.stages_of(m, state.release.version) if not state.release.deregistered else []
                state.message, state.record = parse_release_message(state.release.message, m, state.release.version)
        if rev.model and state.tracked_by is None and not state.results:
            raise ModelNotFound(f"{rev.label}: model '{m}' has no tracked checkpoint and no metrics at that revision")
        shown.append(state)
    return Shown(rev, shown)
