"""``git model status``: per model, the workspace weights and the release they match, the stage
holders, and whether the metrics in the workspace still describe the weights. Reads only."""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from gitmodel import dvcyaml, gitrepo, jsonio, known, pairs, project, provenance, refs, revisions, store
from gitmodel import registry as registry_mod
from gitmodel.errors import InvalidName


@dataclass
class HolderStatus:
    stage: str
    version: str | None
    tag: str
    counter: int | None
    fraction: float | None
    assigned_at: str
    by: str
    trailers: dict[str, str] = field(default_factory=dict)
    on_remote: bool | None = None      # its objects are on the DVC remote (None: no remote, or unreadable)


@dataclass
class MetricsStatus:
    evalset: str
    path: str
    model_md5: str | None
    stale: bool
    reason: str | None = None
    unverified: str | None = None      # why the producer is not tied to the model md5 (None: it is)
    orphaned: bool = False             # no pair of dvc.yaml declares it: never read as a result


@dataclass
class ModelStatus:
    model: str
    path: str
    workspace_md5: str | None          # None: the model file is not in the workspace
    tracked_md5: str | None            # what the .dvc file / dvc.lock in the workspace records
    tracked_in: str | None             # that file, relative to the root
    releases: list[str] = field(default_factory=list)   # releases whose weights are the workspace's
    stages: list[HolderStatus] = field(default_factory=list)
    metrics: list[MetricsStatus] = field(default_factory=list)
    tier: dict = field(default_factory=dict)           # params.tier: risk, accuracy_drop, schedule
    monitor: dict = field(default_factory=dict)        # command -> {"at", "verdict"}: when the monitors last ran here
    remote: str | None = None          # the default DVC remote (None: the weights live on this machine only)
    remote_error: str | None = None    # why the remote could not be read

    @property
    def release(self) -> str | None:
        return self.releases[-1] if self.releases else None

    @property
    def state(self) -> str:
        if self.workspace_md5 is None:
            return "missing"
        return "released" if self.releases else "unreleased"

    @property
    def modified(self) -> bool:
        """The workspace bytes differ from what DVC tracks (not yet `git model add`-ed)."""
        return self.workspace_md5 is not None and self.workspace_md5 != self.tracked_md5

    def to_dict(self) -> dict:
        return {
            "model": self.model, "path": self.path, "state": self.state,
            "workspace": {"md5": self.workspace_md5, "release": self.release, "releases": self.releases},
            "tracked": {"md5": self.tracked_md5, "file": self.tracked_in, "modified": self.modified},
            "stages": {h.stage: {"version": h.version, "tag": h.tag, "counter": h.counter, "fraction": h.fraction,
                                 "assigned_at": h.assigned_at, "by": h.by, "on_remote": h.on_remote}
                       for h in self.stages},
            "remote": {"name": self.remote, "error": self.remote_error},
            "metrics": [{"evalset": m.evalset, "path": m.path, "model_md5": m.model_md5, "stale": m.stale,
                         "reason": m.reason, "unverified": m.unverified, "orphaned": m.orphaned}
                        for m in self.metrics],
            "tier": self.tier, "monitor": self.monitor,
        }


def _model_rel(artifacts: dict, model: str) -> str:
    entry = artifacts.get(model)
    path = entry.get("path") if isinstance(entry, dict) else None
    return str(path) if path else dvcyaml.model_path(model)


def _metrics_status(root: Path, model: str, declared: list | None = None,
                    lock_changes: dict | None = None) -> list[MetricsStatus]:
    """Per metrics file of ``model``; with ``declared`` (the pairs of dvc.yaml) a file no pair declares is
    orphaned, a declared pair without a file is stale (not evaluated yet), and ``lock_changes`` (pair ->
    params changed since dvc.lock recorded them) make a pair stale as `dvc status` says it."""
    folder = root / dvcyaml.METRICS_DIR / model
    found = []
    for p in sorted(folder.glob("*.json")) if folder.is_dir() else []:
        if not dvcyaml.is_result_file(p.name):
            continue
        rel = p.relative_to(root).as_posix()
        if declared is not None and (model, p.stem) not in declared:
            found.append(MetricsStatus(p.stem, rel, None, False, None, orphaned=True))
            continue
        try:
            doc = jsonio.loads(p.read_bytes())
            md5 = doc["model"]["md5"]
        except (ValueError, KeyError, TypeError, OSError):
            found.append(MetricsStatus(p.stem, rel, None, True, "not a readable git-model metrics file"))
            continue
        reasons = provenance.stale_at(root, revisions.Revision(gitrepo.WORKSPACE, None), doc, with_params=True)
        reasons = [str(r) for r in reasons] + pairs.lock_reason(reasons, (lock_changes or {}).get((model, p.stem)))
        reason = "; ".join(reasons) or None
        unverified = provenance.verification_of(doc)["detail"] if provenance.is_unverified(doc) else None
        found.append(MetricsStatus(p.stem, rel, md5, reason is not None, reason, unverified))
    have = {m.evalset for m in found}
    for m, e in declared or []:
        if m == model and e not in have:
            found.append(MetricsStatus(e, dvcyaml.metrics_path(m, e), None, True, "not evaluated yet: `dvc repro` runs it"))
    return found


def to_dict(statuses: list[ModelStatus]) -> dict:
    """``status --json``: every model's status under ``models``."""
    return {"models": [s.to_dict() for s in statuses]}


def status(model: str | None = None, start: Path | None = None) -> list[ModelStatus]:
    """Per model: the workspace weights and the release they match, stage holders, stale metrics."""
    root = project.open_root(start)
    reg = registry_mod.load(root)
    artifacts = dvcyaml.artifacts(root)
    names = sorted(set(artifacts) | set(reg.models()))
    if model is not None:
        refs.check_name(model, "model name")
        if model not in names and not (root / dvcyaml.model_path(model)).exists():
            raise InvalidName(f"unknown model '{model}'" + (known.suggestion(model, names) or
                                                            f"; models: {', '.join(names) or 'none yet'}"),
                              hint="track one with `git model add models/<name>.gguf`")
        names = [model]
    hashes = project.hash_cache(root)
    declared, lock_changes = pairs.declared_with_lock_changes(root)
    from gitmodel import monitoring, params

    runs = monitoring.last_runs(root)
    statuses = []
    with gitrepo.ObjectReader(root) as reader:
        for name in names:
            rel = _model_rel(artifacts, name)
            path = root / rel
            tracked = store.tracked(root, path)
            workspace_md5 = hashes.md5(path) if path.is_file() else None
            st = ModelStatus(name, rel, workspace_md5, tracked.md5 if tracked else None,
                             tracked.source.relative_to(root).as_posix() if tracked else None)
            releases = reg.active_releases(name)
            md5s = {commit: found[rel] for commit, found in store.tracked_md5s(
                root, [r.commit for r in releases], [rel], reader=reader, lenient=True).items()}
            st.releases = [str(r.version) for r in releases if workspace_md5 and md5s.get(r.commit) == workspace_md5]
            for stage, event in sorted(reg.holders(name).items()):
                trailers = event.trailers
                # our own record of the time (tag times may be nudged forward to keep them ordered)
                when = trailers.get("Assigned-At") or \
                    datetime.fromtimestamp(event.time, timezone.utc).astimezone().isoformat()
                st.stages.append(HolderStatus(
                    stage, str(event.version) if event.version else None, event.tag, event.counter,
                    event.fraction, when, trailers.get("Assigned-By") or event.tagger, trailers))
            st.metrics = _metrics_status(root, name, declared, lock_changes)
            st.tier = params.tier(root, name)
            st.monitor = runs.get(name) if isinstance(runs.get(name), dict) else {}
            statuses.append(st)
    _mark_remote_presence(root, statuses, reg)
    return statuses


def _mark_remote_presence(root: Path, statuses: list[ModelStatus], reg: registry_mod.Registry) -> None:
    from gitmodel import sharing

    commits = {h.tag: reg.holder(st.model, h.stage).commit for st in statuses for h in st.stages}
    presence = sharing.holder_presence(root, [(st.model, commits[h.tag], h.tag) for st in statuses for h in st.stages])
    for st in statuses:
        st.remote, st.remote_error = presence.remote, presence.error
        for h in st.stages:
            h.on_remote = presence.on_remote.get(h.tag)
