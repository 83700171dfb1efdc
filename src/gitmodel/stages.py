"""``git model promote``: a stage tag for a release, behind the gate for ``prod``.

A stage assignment is an annotated tag ``<model>#<stage>#<N>`` on the release's
commit, written by the registry (:meth:`registry.Registry.assign`), its message
GTO's first line and git trailers (:func:`refs.stage_message`). A promotion to
prod first runs the gate against the version that holds prod; the gate may
take minutes, so it runs without the repository lock, and what it decided on
is read again under the lock before the tag is written.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from gitmodel import gitrepo, project, provenance, refs, sharing
from gitmodel import registry as registry_mod
from gitmodel.gaterules import GateOutcome
from gitmodel.registry import CANARY, PROD, StageError


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


@dataclass
class PromoteResult:
    model: str
    version: str
    stage: str
    tag: str | None = None
    counter: int | None = None
    commit: str | None = None
    fraction: float | None = None
    gate: GateOutcome | None = None    # what the gate against prod decided
    accepted_risk: str | None = None
    refused: bool = False          # the gate failed and no --accept-risk: nothing was written
    unchanged: bool = False        # the version already holds the stage (with this fraction)
    message: str | None = None

    def to_dict(self) -> dict:
        return {"model": self.model, "version": self.version, "stage": self.stage, "tag": self.tag,
                "counter": self.counter, "commit": self.commit, "fraction": self.fraction,
                "gate": self.gate.to_dict() if self.gate else None, "accepted_risk": self.accepted_risk,
                "refused": self.refused, "unchanged": self.unchanged, "message": self.message}


def promote(model: str, version: str, stage: str, *, fraction: float | None = None,
            accept_risk: str | None = None, rerun: bool = False, wait: float = 0.0, on_wait=None,
            start: Path | None = None, accept_unverified: str | None = None,
            allow_local: bool = False) -> PromoteResult:
    """Assign ``stage`` to ``model@version``; for prod, only through the gate (or an accepted risk); for
    prod and canary, only when its weights are on the DVC remote (unless ``allow_local``)."""
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
    release = reg.find_release(model, version)
    result = PromoteResult(model, str(release.version), stage, fraction=fraction, commit=release.commit,
                           accepted_risk=accept_risk.strip() if accept_risk else None)
    accepted_unverified = provenance.check_release_verified(root, model, release, stage, accept_unverified)
    current = reg.holder(model, stage)
    if current is not None and current.version == release.version and current.fraction == fraction:
        result.unchanged, result.tag, result.counter = True, current.tag, current.counter
        return result
    who = gitrepo.identity(root)       # before the gate: fail fast on a missing git identity
    sharing.require_fetchable(root, release, stage, allow_local)
    prod_holder = reg.holder(model, PROD)
    from gitmodel.gating import promotion_gate

    gate = promotion_gate(root, model, release.version, prod_holder, required=stage == PROD, rerun=rerun)
    result.gate = gate
    if stage == PROD and gate.status == "failed" and not result.accepted_risk:
        result.refused = True
        return result
    trailers = {
        "Fraction": f"{fraction:g}" if fraction is not None else None,
        "Gate": gate.summary,
        "Accepted-Risk": result.accepted_risk,
        "Accepted-Unverified": accepted_unverified,
    }
    with registry_mod.writing(root, wait=wait, on_wait=on_wait) as reg:
        # the gate ran without the lock (it may evaluate for minutes): what it decided on is read
        # again under the lock, and the counter is taken from the registry read there
        release = reg.find_release(model, version)
        now_holder = reg.holder(model, PROD)
        if (now_holder and now_holder.tag) != (prod_holder and prod_holder.tag):
            now = now_holder.tag if now_holder else "none"
            raise StageError(f"{model}#prod changed while the gate ran (now {now})",
                             hint="run the promotion again: it gates against the new prod version")
        current = reg.holder(model, stage)
        if current is not None and current.version == release.version and current.fraction == fraction:
            result.unchanged, result.tag, result.counter = True, current.tag, current.counter
            return result
        written = reg.assign(model, stage, release, who, trailers)
    result.tag, result.counter, result.message = written.tag, written.counter, written.message
    return result
