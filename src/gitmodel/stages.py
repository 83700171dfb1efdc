"""``git model promote`` and ``git model end``: stage tags for a release, behind the gate for the
stages that take production traffic.

A stage assignment is an annotated tag ``<model>#<stage>#<N>`` on the release's
commit, written by the registry (:meth:`registry.Registry.assign`), its message
GTO's first line and git trailers (:func:`refs.stage_message`). A promotion to
prod or canary first runs the gate against the version that holds prod: a
canary serves real users, so a version that failed the gate gets no traffic
unless a risk is accepted in writing. The gate may take minutes, so it runs
without the repository lock, and what it decided on is read again under the
lock before the tag is written. Ending a stage writes GTO's unassignment
``<model>#<stage>!#<N>`` (:func:`end`).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from gitmodel import gitrepo, project, provenance, refs, sharing
from gitmodel import registry as registry_mod
from gitmodel.gaterules import GateOutcome
from gitmodel.registry import CANARY, PROD, StageError

# The stages that serve production traffic: promotion to them goes through the gate.
GATED = (PROD, CANARY)
# A canary above this share of traffic is a cut-over, not a canary: it asks for an accepted risk.
CUTOVER_FRACTION = 0.5


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


def check_cutover(stage: str, fraction: float | None, accept_risk: str | None) -> None:
    """A canary that takes most of the traffic is a cut-over: it needs the rationale a risky prod
    promotion needs."""
    if stage == CANARY and fraction is not None and fraction > CUTOVER_FRACTION and not accept_risk:
        raise StageError(f"--fraction {fraction:g} on canary sends most traffic to an unproven version: "
                         f"that is a cut-over, not a canary (a canary takes at most {CUTOVER_FRACTION:g})",
                         hint=f'use --fraction {CUTOVER_FRACTION:g} or less, or give --accept-risk "why"')


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
    canary_ended: list[str] = field(default_factory=list)   # a canary that graduated to prod: its unassignments
    message: str | None = None

    def to_dict(self) -> dict:
        return {"model": self.model, "version": self.version, "stage": self.stage, "tag": self.tag,
                "counter": self.counter, "commit": self.commit, "fraction": self.fraction,
                "gate": self.gate.to_dict() if self.gate else None, "accepted_risk": self.accepted_risk,
                "refused": self.refused, "unchanged": self.unchanged, "canary_ended": list(self.canary_ended),
                "message": self.message}


def promote(model: str, version: str, stage: str, *, fraction: float | None = None,
            accept_risk: str | None = None, rerun: bool = False, wait: float = 0.0, on_wait=None,
            start: Path | None = None, accept_unverified: str | None = None,
            allow_local: bool = False) -> PromoteResult:
    """Assign ``stage`` to ``model@version``; for prod and canary, only through the gate (or an
    accepted risk), and only when its weights are on the DVC remote (unless ``allow_local``)."""
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
    check_cutover(stage, fraction, accept_risk)
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

    gate = promotion_gate(root, model, release.version, prod_holder, required=stage in GATED, rerun=rerun)
    result.gate = gate
    if stage in GATED and gate.status == "failed" and not result.accepted_risk:
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
        canary = reg.holder(model, CANARY)
        if stage == PROD and canary is not None and canary.version == release.version:
            # the canary graduated: its assignment would otherwise outlive it and come back to life
            # (traffic included) as soon as prod moves to another version, e.g. on a rollback
            result.canary_ended = withdraw(reg, model, CANARY, who, {"Message": f"promoted to prod ({written.tag})"})[0]
    result.tag, result.counter, result.message = written.tag, written.counter, written.message
    return result


@dataclass
class EndResult:
    model: str
    stage: str
    version: str | None = None      # the version that held the stage
    tags: list[str] = field(default_factory=list)   # the unassignments written, the holder's first
    commit: str | None = None
    ended: list[str] = field(default_factory=list)  # every version whose assignment was withdrawn
    now: str | None = None          # what holds the stage afterwards (only a tag git-model cannot end)
    message: str | None = None

    def to_dict(self) -> dict:
        return {"model": self.model, "stage": self.stage, "version": self.version, "tags": list(self.tags),
                "commit": self.commit, "ended": list(self.ended), "now": self.now, "message": self.message}


def check_end(model: str, stage: str, holder: registry_mod.StageEvent | None) -> None:
    """Why a stage may not be ended, as an error; nothing when it may."""
    if stage == PROD:
        raise StageError(f"{model}#prod cannot be ended: production would be left without a model",
                         hint=f"roll back (`git model rollback {model}`) or promote another version to prod")
    if holder is None:
        raise StageError(f"no version of {model} holds stage '{stage}': there is nothing to end",
                         hint=f"`git model status {model}` shows the stages and their versions")
    if holder.version is None:
        raise StageError(f"{holder.tag} assigns '{stage}' to a commit without a release of {model}: "
                         "git-model ends stages of releases only",
                         hint=f"remove it with gto: gto unassign {model} {holder.commit[:12]} --stage {stage}")


def end(model: str, stage: str, *, message: str | None = None, wait: float = 0.0, on_wait=None,
        start: Path | None = None) -> EndResult:
    """Withdraw ``stage``: GTO's unassignment tag ``MODEL#STAGE!#N`` for the version holding it.

    By GTO's rule an unassignment hands the stage back to the version that held it before, whose
    assignment still stands (a canary replaced by another, or tags gto wrote): those are withdrawn too,
    newest first, so that `gto show`, `status` and the server all see the stage empty. Ending prod is
    refused: roll back or promote instead."""
    root = project.open_root(start)
    refs.check_name(model, "model name")
    refs.check_name(stage, "stage name")
    if message is not None and any((ord(c) < 32 and c not in "\n\t") or ord(c) == 127 for c in message):
        raise StageError("the -m message holds control characters", hint="write it as plain text")
    check_end(model, stage, registry_mod.load(root).holder(model, stage))
    who = gitrepo.identity(root)
    trailers = {"Message": (message or "").strip() or None}
    with registry_mod.writing(root, wait=wait, on_wait=on_wait) as reg:
        holder = reg.holder(model, stage)
        check_end(model, stage, holder)
        result = EndResult(model, stage, str(holder.version), commit=holder.commit)
        result.tags, result.ended, result.message, after = withdraw(reg, model, stage, who, trailers)
        result.now = after.tag if after is not None else None
    return result


def withdraw(reg: registry_mod.Registry, model: str, stage: str, by: str, trailers: dict) \
        -> tuple[list[str], list[str], str | None, registry_mod.StageEvent | None]:
    """Unassign ``stage`` from its holder, then from each version GTO would hand it back to, until
    nothing holds it (or a holder without a release does). Under the registry's write lock.
    Returns (tags written, versions withdrawn, the first tag's message, what still holds it)."""
    tags, versions, message = [], [], None
    holder = reg.holder(model, stage)
    for _ in range(len(reg.stage_history(model, stage))):
        if holder is None or holder.version is None:
            break
        written = reg.unassign(model, stage, reg.release(model, holder.version), by, trailers)
        tags.append(written.tag)
        versions.append(str(holder.version))
        message = message or written.message
        holder = reg.holder(model, stage)
    return tags, versions, message, holder
