"""Stages: ``promote`` (a GTO stage tag, behind the gate for ``prod``) and ``status``.

A stage assignment is an annotated tag ``<model>#<stage>#<N>`` on the release's
commit, N one past the model's highest counter (GTO's rule). Its message starts
with GTO's own first line and ends with git trailers, so both people and
``git interpret-trailers`` read it::

    Assigning stage canary to artifact chat version v1.4.0

    Assigned-By: Jane Doe <jane@example.com>
    Assigned-At: 2025-03-01T12:00:00.123456+00:00
    Fraction: 0.1
    Gate: failed against v1.3.0 (prod): support: accuracy, labels.positive.fpr
    Accepted-Risk: the fraud team signed off on the fpr change (JIRA-12)

Tag times are made strictly increasing per model (one second past the model's
latest stage tag when the clock has not moved on): GTO and ``dvc artifacts get
--stage`` order assignments by tag time, which has one-second resolution, and
would otherwise pick an arbitrary one of two assignments made within a second.
"""
from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from gitmodel import dvcyaml, gitrepo, locking, project, provenance, refs, store
from gitmodel import registry as registry_mod
from gitmodel.errors import GitModelError, InvalidName
from gitmodel.refs import Version
from gitmodel.registry import Registry, Release, StageEvent

PROD = "prod"
CANARY = "canary"


class UnknownVersion(GitModelError):
    pass


class StageError(GitModelError):
    pass


# ----------------------------------------------------------------------------- releases and tag messages


def find_release(reg: Registry, model: str, version: str) -> Release:
    """The active release ``version`` of ``model``; the error names the versions that exist."""
    refs.check_name(model, "model name")
    wanted = Version.parse(version)
    releases = reg.active_releases(model)
    if not releases:
        import difflib

        close = difflib.get_close_matches(model, reg.models(), n=3, cutoff=0.5)
        known = f"; did you mean {', '.join(close)}?" if close else ""
        raise UnknownVersion(f"model '{model}' has no releases{known}",
                             hint=f"release one first: git model release {model} v1.0.0")
    release = reg.release(model, wanted)
    if release is None or release.deregistered:
        what = "was deregistered" if release is not None else "does not exist"
        raise UnknownVersion(f"release {model}@{wanted} {what}; releases of {model}: "
                             f"{', '.join(str(r.version) for r in releases)}")
    check_stageable(reg, release)
    return release


def check_stageable(reg: Registry, release: Release) -> None:
    """Refuse a stage tag on a commit holding several versions of the model: GTO could no longer read
    the registry (it maps a commit to one version), and neither could git-model."""
    on_commit = reg.releases_at(release.model, release.commit)
    if len(on_commit) > 1:
        raise StageError(f"commit {release.commit[:12]} holds several versions of {release.model} "
                         f"({', '.join(r.tag for r in on_commit)}): a stage tag on it would make `gto show` fail",
                         hint="delete the release tag that should not be there (git tag -d TAG), then try again")


def format_trailers(trailers: dict[str, str | None]) -> str:
    lines = []
    for key, value in trailers.items():
        if value is None:
            continue
        value = " ".join(str(value).split())   # a trailer is one line
        lines.append(f"{key}: {value}")
    return "\n".join(lines)


def tag_message(model: str, stage: str, version: Version, trailers: dict[str, str | None]) -> str:
    """GTO's first line, a blank line, then the trailers."""
    return f"Assigning stage {stage} to artifact {model} version {version}\n\n{format_trailers(trailers)}\n"


def parse_trailers(message: str) -> dict[str, str]:
    """The ``Key: value`` lines of a tag message's last paragraph (empty for GTO's plain messages)."""
    paragraphs = [p for p in (message or "").strip().split("\n\n") if p.strip()]
    if len(paragraphs) < 2:
        return {}
    found = {}
    for line in paragraphs[-1].splitlines():
        key, sep, value = line.partition(": ")
        if sep and key and " " not in key:
            found[key] = value.strip()
    return found


def fraction_of(event: StageEvent) -> float | None:
    raw = parse_trailers(event.message).get("Fraction")
    try:
        return float(raw) if raw is not None else None
    except ValueError:
        return None


def check_fraction(stage: str, fraction: float | None) -> None:
    if fraction is None:
        if stage == CANARY:
            raise StageError("promotion to canary needs --fraction: the share of traffic the canary serves",
                             hint="e.g. --fraction 0.1 for 10 % of requests")
        return
    if stage == PROD:
        raise StageError("--fraction does not apply to prod: prod serves the traffic the other stages do not",
                         hint="use --stage canary --fraction F to serve a share of traffic")
    if not (0 < fraction <= 1):
        raise StageError(f"--fraction {fraction:g} is out of range: give a share of traffic in (0, 1], e.g. 0.1")


def assign(root: Path, reg: Registry, model: str, stage: str, release: Release,
           trailers: dict[str, str | None]) -> tuple[str, int]:
    """Create the stage tag on the release's commit; returns (tag name, counter).

    The caller holds the repository lock and loaded ``reg`` under it, so the
    counter is not taken twice."""
    counter = reg.next_counter(model)
    tag = refs.stage_tag(model, stage, counter)
    last = max((e.time for e in reg.stage_events.get(model, [])), default=0)
    when = max(int(time.time()), last + 1)
    gitrepo.create_tag(root, tag, release.commit, tag_message(model, stage, release.version, trailers),
                       cleanup="whitespace", date=when)
    return tag, counter


def now_iso() -> str:
    return datetime.now(timezone.utc).astimezone().isoformat(timespec="microseconds")


# ----------------------------------------------------------------------------- promote


@dataclass
class GateOutcome:
    status: str                    # "passed" | "failed" | "none" (no prod holder) | "not run" (error, non-prod)
    summary: str                   # one line for the tag message
    baseline: str | None = None    # the prod version the candidate was gated against
    results: list = field(default_factory=list)   # gating.GateResult, one per eval set

    def to_dict(self) -> dict:
        return {"status": self.status, "summary": self.summary, "baseline": self.baseline,
                "results": [r.to_dict() for r in self.results]}


@dataclass
class PromoteResult:
    model: str
    version: str
    stage: str
    tag: str | None = None
    counter: int | None = None
    commit: str | None = None
    fraction: float | None = None
    gate: GateOutcome | None = None
    accepted_risk: str | None = None
    refused: bool = False          # the gate failed and no --accept-risk: nothing was written
    unchanged: bool = False        # the version already holds the stage (with this fraction)
    message: str | None = None

    def to_dict(self) -> dict:
        return {"model": self.model, "version": self.version, "stage": self.stage, "tag": self.tag,
                "counter": self.counter, "commit": self.commit, "fraction": self.fraction,
                "gate": self.gate.to_dict() if self.gate else None, "accepted_risk": self.accepted_risk,
                "refused": self.refused, "unchanged": self.unchanged, "message": self.message}


def run_gate(root: Path, model: str, version: Version, holder: StageEvent | None, required: bool,
             rerun: bool = False) -> GateOutcome:
    """Gate ``version`` against the prod holder. ``required`` (a prod promotion): gate errors propagate;
    otherwise they are recorded as "not run"."""
    if holder is None:
        return GateOutcome("none", "none: no version holds prod yet, so there is no holder to beat")
    baseline = str(holder.version) if holder.version else holder.commit[:12]
    if holder.version == version:
        return GateOutcome("passed", f"not needed: {version} is the prod version", baseline=baseline)
    from gitmodel import gating

    try:
        results = list(gating.run_gate(model, baseline=f"{model}#{PROD}", candidate=f"{model}@{version}",
                                       rerun=rerun, start=root))
    except GitModelError as e:
        if required:
            raise
        return GateOutcome("not run", f"not run: {e.message}", baseline=baseline)
    passed = bool(results) and all(r.passed for r in results)
    return GateOutcome("passed" if passed else "failed", gating.trailer(results, baseline), baseline=baseline,
                       results=results)


def promote(model: str, version: str, stage: str, *, fraction: float | None = None,
            accept_risk: str | None = None, rerun: bool = False, wait: float = 0.0, on_wait=None,
            start: Path | None = None, accept_unverified: str | None = None) -> PromoteResult:
    """Assign ``stage`` to ``model@version``; for prod, only through the gate (or an accepted risk)."""
    root = project.open_root(start)
    refs.check_name(model, "model name")
    refs.check_name(stage, "stage name")
    check_fraction(stage, fraction)
    if accept_risk is not None and not accept_risk.strip():
        raise StageError("--accept-risk needs a rationale: why this risk is acceptable, in words",
                         hint='e.g. --accept-risk "latency regression accepted for the new tokenizer (JIRA-12)"')
    bad = sorted({c for c in accept_risk or "" if (ord(c) < 32 and c not in "\n\t") or ord(c) == 127})
    if bad:
        raise StageError(f"the --accept-risk rationale holds control characters ({', '.join(repr(c) for c in bad)})",
                         hint="write it as plain text")
    reg = registry_mod.load(root)
    release = find_release(reg, model, version)
    result = PromoteResult(model, str(release.version), stage, fraction=fraction, commit=release.commit,
                           accepted_risk=accept_risk.strip() if accept_risk else None)
    accepted_unverified = provenance.check_release_verified(root, model, release, stage, accept_unverified)
    current = reg.holder(model, stage)
    if current is not None and current.version == release.version and fraction_of(current) == fraction:
        result.unchanged, result.tag, result.counter = True, current.tag, current.counter
        return result
    who = gitrepo.identity(root)       # before the gate: fail fast on a missing git identity
    prod_holder = reg.holder(model, PROD)
    gate = run_gate(root, model, release.version, prod_holder, required=stage == PROD, rerun=rerun)
    result.gate = gate
    if stage == PROD and gate.status == "failed" and not result.accepted_risk:
        result.refused = True
        return result
    trailers = {
        "Assigned-By": who,
        "Assigned-At": now_iso(),
        "Fraction": f"{fraction:g}" if fraction is not None else None,
        "Gate": gate.summary,
        "Accepted-Risk": result.accepted_risk,
        "Accepted-Unverified": accepted_unverified,
    }
    with locking.repository_lock(root / project.STATE_DIR, wait=wait, on_wait=on_wait):
        # the gate ran without the lock (it may evaluate for minutes): what it decided on is read
        # again under the lock, and the counter is taken from the registry read there
        reg = registry_mod.load(root)
        release = find_release(reg, model, version)
        now_holder = reg.holder(model, PROD)
        if (now_holder and now_holder.tag) != (prod_holder and prod_holder.tag):
            now = now_holder.tag if now_holder else "none"
            raise StageError(f"{model}#prod changed while the gate ran (now {now})",
                             hint="run the promotion again: it gates against the new prod version")
        current = reg.holder(model, stage)
        if current is not None and current.version == release.version and fraction_of(current) == fraction:
            result.unchanged, result.tag, result.counter = True, current.tag, current.counter
            return result
        result.tag, result.counter = assign(root, reg, model, stage, release, trailers)
    result.message = tag_message(model, stage, release.version, trailers)
    return result


# ----------------------------------------------------------------------------- status


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


@dataclass
class MetricsStatus:
    evalset: str
    path: str
    model_md5: str | None
    stale: bool
    reason: str | None = None
    unverified: str | None = None      # why the producer is not tied to the model md5 (None: it is)


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
                                 "assigned_at": h.assigned_at, "by": h.by} for h in self.stages},
            "metrics": [{"evalset": m.evalset, "path": m.path, "model_md5": m.model_md5, "stale": m.stale,
                         "reason": m.reason, "unverified": m.unverified} for m in self.metrics],
        }


def tracked_md5_at(reader: gitrepo.ObjectReader, commits: list[str], rel: str) -> dict[str, str | None]:
    """md5 of the model at ``rel`` in each commit, from its .dvc file or dvc.lock (two batched reads)."""
    if not commits:
        return {}
    specs = [f"{c}:{rel}.dvc" for c in commits] + [f"{c}:{store.LOCK_FILE}" for c in commits]
    blobs = reader.read_many(specs)
    found: dict[str, str | None] = {}
    for i, commit in enumerate(commits):
        dvc_blob, lock_blob = blobs[i], blobs[len(commits) + i]
        try:
            out = store.entry_from(Path(), rel, None if dvc_blob is None else dvc_blob[1].decode("utf-8"),
                                   None if lock_blob is None else lock_blob[1].decode("utf-8"))
        except (GitModelError, UnicodeDecodeError):
            out = None
        found[commit] = out.md5 if out else None
    return found


def _model_rel(artifacts: dict, model: str) -> str:
    entry = artifacts.get(model)
    path = entry.get("path") if isinstance(entry, dict) else None
    return str(path) if path else dvcyaml.model_path(model)


def _metrics_status(root: Path, model: str, tracked_md5: str | None) -> list[MetricsStatus]:
    folder = root / dvcyaml.METRICS_DIR / model
    found = []
    for p in sorted(folder.glob("*.json")) if folder.is_dir() else []:
        rel = p.relative_to(root).as_posix()
        try:
            doc = json.loads(p.read_bytes())
            md5 = doc["model"]["md5"]
            evalset = doc.get("evalset") or {}
        except (ValueError, KeyError, TypeError, OSError):
            found.append(MetricsStatus(p.stem, rel, None, True, "not a readable git-model metrics file"))
            continue
        reasons = provenance.workspace_staleness(root, doc, tracked_md5)
        reason = "; ".join(reasons) or None
        unverified = provenance.verification_of(doc)["detail"] if provenance.is_unverified(doc) else None
        found.append(MetricsStatus(p.stem, rel, md5, reason is not None, reason, unverified))
    return found


def status(model: str | None = None, start: Path | None = None) -> list[ModelStatus]:
    """Per model: the workspace weights and the release they match, stage holders, stale metrics."""
    root = project.open_root(start)
    reg = registry_mod.load(root)
    artifacts = dvcyaml.artifacts(root)
    names = sorted(set(artifacts) | set(reg.models()))
    if model is not None:
        refs.check_name(model, "model name")
        if model not in names and not (root / dvcyaml.model_path(model)).exists():
            import difflib

            close = difflib.get_close_matches(model, names, n=3, cutoff=0.5)
            raise InvalidName(f"unknown model '{model}'" + (f"; did you mean {', '.join(close)}?" if close else
                                                            f"; models: {', '.join(names) or 'none yet'}"),
                              hint="track one with `git model add models/<name>.gguf`")
        names = [model]
    hashes = project.hash_cache(root)
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
            md5s = tracked_md5_at(reader, list(dict.fromkeys(r.commit for r in releases)), rel)
            st.releases = [str(r.version) for r in releases if workspace_md5 and md5s.get(r.commit) == workspace_md5]
            for stage, event in sorted(reg.holders(name).items()):
                trailers = parse_trailers(event.message)
                # our own record of the time (tag times may be nudged forward to keep them ordered)
                when = trailers.get("Assigned-At") or \
                    datetime.fromtimestamp(event.time, timezone.utc).astimezone().isoformat()
                st.stages.append(HolderStatus(
                    stage, str(event.version) if event.version else None, event.tag, event.counter,
                    fraction_of(event), when, trailers.get("Assigned-By") or event.tagger, trailers))
            st.metrics = _metrics_status(root, name, st.tracked_md5)
            statuses.append(st)
    return statuses
