"""``git model canary-check``: the canary against prod on the production log, and what to do about it.

The two arms are the log's records of the version holding ``canary`` (stage ``canary``) and of the
version holding ``prod`` (stage ``prod``), both since the canary was assigned. Side by side: requests,
error rate (5xx: the model's failures, not the clients'), latency p50 / p95, and per output signal
(:mod:`signals`: length, label, confidence, refusal) the PSI of the canary's distribution against
prod's, with the project's one PSI (:mod:`drift`).

The verdict (:func:`assess`, pure) is one of:

Confidence is shown beside them but not judged: two versions' calibrations differ by design (a better
model is often a surer one), and the gate already judged that shift on the eval set
(``output_psi.confidence``). The verdict reads what a user of the model sees change.

- **end** when a judged signal's PSI reaches the alert band (``canary.psi_alert``) or the canary's error
  rate is above prod's by more than ``canary.error_margin``;
- **promote** when the canary has been watched (first to last canary record) at least
  ``canary.min_hours`` with at least ``canary.min_requests`` requests per arm, and every judged signal
  both arms carry is stable (below ``canary.psi_watch``);
- **keep watching** otherwise, with what is still missing.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterable, Sequence

from gitmodel import drift, prodlog, project, signals
from gitmodel import registry as registry_mod
from gitmodel.errors import GitModelError, InvalidParams
from gitmodel.registry import CANARY, PROD

PROMOTE, END, KEEP_WATCHING = "promote", "end", "keep watching"
# The output signals compared between the arms; the verdict judges those a user of the model sees change.
SIGNALS = ("output.chars", "output.label", "output.confidence", "output.refusal")
JUDGED = ("output.chars", "output.label", "output.refusal")
DEFAULTS = {"min_hours": 24.0, "min_requests": 200, "psi_watch": drift.PSI_MODERATE,
            "psi_alert": drift.PSI_SIGNIFICANT, "error_margin": 0.01}


@dataclass(frozen=True)
class Policy:
    min_hours: float = DEFAULTS["min_hours"]
    min_requests: int = DEFAULTS["min_requests"]
    psi_watch: float = DEFAULTS["psi_watch"]
    psi_alert: float = DEFAULTS["psi_alert"]
    error_margin: float = DEFAULTS["error_margin"]

    def to_dict(self) -> dict:
        return {"min_hours": self.min_hours, "min_requests": self.min_requests, "psi_watch": self.psi_watch,
                "psi_alert": self.psi_alert, "error_margin": self.error_margin}


def policy_from(section, where: str = "params.yaml: canary") -> Policy:
    """params.yaml ``canary:`` over the defaults; InvalidParams names a wrong key or value."""
    if section is None:
        return Policy()
    if not isinstance(section, dict):
        raise InvalidParams(f"{where} must be a mapping of {', '.join(DEFAULTS)}")
    values = dict(DEFAULTS)
    for key, value in section.items():
        if key not in DEFAULTS:
            from gitmodel.known import did_you_mean

            raise InvalidParams(f"{where}.{key} is not a canary setting: {did_you_mean(str(key), list(DEFAULTS))}",
                                hint=f"the canary settings are {', '.join(DEFAULTS)}")
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0 or value != value:
            raise InvalidParams(f"{where}.{key} must be a number >= 0, got {value!r}",
                                hint=f"fix it in params.yaml (default: {DEFAULTS[key]})")
        values[key] = int(value) if key == "min_requests" else float(value)
    return Policy(**values)


@dataclass
class Arm:
    stage: str
    version: str | None
    requests: int = 0
    errors: int = 0
    latency_p50: float | None = None
    latency_p95: float | None = None
    first: str | None = None
    last: str | None = None

    @property
    def error_rate(self) -> float | None:
        return self.errors / self.requests if self.requests else None

    def to_dict(self) -> dict:
        return {"stage": self.stage, "version": self.version, "requests": self.requests, "errors": self.errors,
                "error_rate": self.error_rate, "latency_ms": {"p50": self.latency_p50, "p95": self.latency_p95},
                "first": self.first, "last": self.last}


@dataclass
class SignalResult:
    name: str
    psi: drift.PSI | None          # None: not carried by both arms
    band: str                      # stable | moderate | significant | insufficient data | not measured
    judged: bool = True            # False: shown, not part of the verdict

    def to_dict(self) -> dict:
        return {"signal": self.name, "band": self.band, "judged": self.judged,
                **(self.psi.to_dict() if self.psi else {"psi": None})}


@dataclass
class Report:
    model: str
    verdict: str
    reasons: list[str]
    prod: Arm
    canary: Arm
    signals: list[SignalResult]
    hours_watched: float
    policy: Policy
    fraction: float | None = None
    since: str | None = None
    read: dict = field(default_factory=dict)
    applied: dict | None = None    # what --apply did: {"action", "tags" / "refused", ...}

    def to_dict(self) -> dict:
        return {"model": self.model, "verdict": self.verdict, "reasons": list(self.reasons),
                "hours_watched": round(self.hours_watched, 4), "since": self.since, "fraction": self.fraction,
                "prod": self.prod.to_dict(), "canary": self.canary.to_dict(),
                "signals": [s.to_dict() for s in self.signals], "policy": self.policy.to_dict(),
                "log": dict(self.read), "applied": self.applied}


def _percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    import numpy as np

    return round(float(np.percentile(np.asarray(values, dtype=float), q)), 3)


def summarise(stage: str, version: str | None, records: Sequence[dict]) -> Arm:
    latencies = [float(r["latency_ms"]) for r in records if isinstance(r.get("latency_ms"), (int, float))]
    times = sorted(str(r["ts"]) for r in records)
    return Arm(stage, version, len(records), sum(1 for r in records if int(r.get("status") or 200) >= 500),
               _percentile(latencies, 50), _percentile(latencies, 95), times[0] if times else None,
               times[-1] if times else None)


def compare_signal(name: str, prod: Sequence[dict], canary: Sequence[dict]) -> SignalResult:
    signal = next(s for s in signals.BUILTIN if s.name == name)
    ok = [r for r in prod if int(r.get("status") or 200) < 400]
    new = [r for r in canary if int(r.get("status") or 200) < 400]
    expected, actual = signals.values(ok, signal), signals.values(new, signal)
    judged = name in JUDGED
    if not expected or not actual:
        return SignalResult(name, None, "not measured", judged)
    if signal.kind == "categorical":
        from collections import Counter

        psi = drift.measure_counts(Counter(map(str, expected)), Counter(map(str, actual)))
    else:
        psi = drift.measure_values(expected, actual)
    return SignalResult(name, psi, psi.band, judged)


def hours_between(first: str | None, last: str | None) -> float:
    if not first or not last:
        return 0.0
    return (prodlog.parse_timestamp(last) - prodlog.parse_timestamp(first)).total_seconds() / 3600.0


def assess(prod: Arm, canary: Arm, compared: list[SignalResult], policy: Policy) -> tuple[str, list[str]]:
    """The verdict and its reasons, from the figures alone."""
    alerts, waits = [], []
    for s in (s for s in compared if s.judged):
        if s.psi is not None and s.psi.value is not None and s.psi.value >= policy.psi_alert:
            alerts.append(f"{s.name}: PSI {s.psi.value:.3f} >= {policy.psi_alert:g} (alert band)")
        elif s.psi is not None and s.psi.value is not None and s.psi.value >= policy.psi_watch:
            waits.append(f"{s.name}: PSI {s.psi.value:.3f} >= {policy.psi_watch:g}, below the alert band")
        elif s.band == drift.INSUFFICIENT:
            waits.append(f"{s.name}: too few answers per bin for a PSI yet")
    if canary.error_rate is not None and canary.errors and \
            canary.error_rate > (prod.error_rate or 0.0) + policy.error_margin:
        alerts.append(f"errors: canary {canary.error_rate:.2%} vs prod {(prod.error_rate or 0.0):.2%} "
                      f"(more than {policy.error_margin:.2%} higher)")
    if alerts:
        return END, alerts
    hours = hours_between(canary.first, canary.last)
    if hours < policy.min_hours:
        waits.insert(0, f"watched {hours:.1f} h of the {policy.min_hours:g} h required")
    for arm in (canary, prod):
        if arm.requests < policy.min_requests:
            waits.append(f"{arm.stage}: {arm.requests} requests of the {policy.min_requests} required")
    if waits:
        return KEEP_WATCHING, waits
    return PROMOTE, [f"watched {hours:.1f} h, {canary.requests} canary and {prod.requests} prod requests, "
                     "every judged signal stable"]


def split(records: Iterable[dict], prod_version: str | None, canary_version: str, since: datetime | None) \
        -> tuple[list[dict], list[dict], int]:
    """(prod records, canary records, records of neither arm) since the canary was assigned."""
    prod, canary, other = [], [], 0
    for r in records:
        if since is not None and prodlog.parse_timestamp(str(r["ts"])) < since:
            other += 1
        elif r.get("stage") == CANARY and r.get("version") == canary_version:
            canary.append(r)
        elif r.get("stage") == PROD and prod_version is not None and r.get("version") == prod_version:
            prod.append(r)
        else:
            other += 1
    return prod, canary, other


def assigned_at(event) -> datetime:
    """When the stage was assigned: the ``Assigned-At`` trailer (the clock, to the microsecond) when it is
    earlier than the tag's time, which has one-second resolution and which the registry moves up to a few
    seconds ahead to keep a model's tag times strictly increasing; the tag's time otherwise."""
    tagged = datetime.fromtimestamp(event.time, timezone.utc)
    try:
        written = prodlog.parse_timestamp(event.trailers.get("Assigned-At", ""))
    except ValueError:
        return tagged
    return min(written, tagged)


class NoCanary(GitModelError):
    pass


def canary_check(model: str, log_paths: Sequence[str], *, apply: bool = False, start: Path | None = None,
                 wait: float = 0.0) -> Report:
    """Compare the canary of ``model`` with prod on the logs; with ``apply``, carry out the verdict:
    promote the canary to prod (through the gate) or end it."""
    from gitmodel import params, refs

    root = project.open_root(start)
    refs.check_name(model, "model name")
    policy = policy_from(params.read(root).get("canary"))
    reg = registry_mod.load(root)
    canary_event, prod_event = reg.holder(model, CANARY), reg.holder(model, PROD)
    if canary_event is None or canary_event.version is None:
        raise NoCanary(f"no release of {model} holds canary: there is nothing to check",
                       hint=f"put one on canary with `git model promote {model} VERSION --stage canary --fraction 0.1`")
    canary_version = str(canary_event.version)
    prod_version = str(prod_event.version) if prod_event is not None and prod_event.version else None
    since = assigned_at(canary_event)
    stats = prodlog.ReadStats()
    prod_records, canary_records, other = split(prodlog.read(log_paths, model=model, stats=stats),
                                                prod_version, canary_version, since)
    prod, canary = summarise(PROD, prod_version, prod_records), summarise(CANARY, canary_version, canary_records)
    compared = [compare_signal(name, prod_records, canary_records) for name in SIGNALS]
    verdict, reasons = assess(prod, canary, compared, policy)
    report = Report(model, verdict, reasons, prod, canary, compared, hours_between(canary.first, canary.last),
                    policy, canary_event.fraction, prodlog.timestamp(since),
                    {**stats.to_dict(), "outside_the_arms": other})
    if apply and verdict != KEEP_WATCHING:
        report.applied = _apply(model, verdict, canary_version, reasons, root, wait)
    return report


def _apply(model: str, verdict: str, version: str, reasons: list[str], root: Path, wait: float) -> dict:
    from gitmodel import stages

    if verdict == PROMOTE:
        done = stages.promote(model, version, PROD, start=root, wait=wait)
        return {"action": "promote", "refused": done.refused, "tags": [t for t in [done.tag, *done.canary_ended] if t],
                "gate": done.gate.summary if done.gate else None}
    ended = stages.end(model, CANARY, message=f"canary-check: {'; '.join(reasons)}", start=root, wait=wait)
    return {"action": "end", "refused": False, "tags": ended.tags, "gate": None}
