"""The gate's rules: a candidate's metrics against a baseline's under a :class:`GatePolicy`, pure.

:func:`gate` returns a :class:`GateReport`, one :class:`GateRow` per metric (and per output PSI
signal) with its rule and verdict; :func:`policy_keys` lists what a policy may name. Running the gate
on stored results (reading them from git, re-running a baseline) is :mod:`gating`.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Mapping

from gitmodel.behaviour import PSI_SIGNALS
from gitmodel.gatepolicy import OUTPUT_PSI, GatePolicy, Tolerance, Tradeoff, matches
from gitmodel.metricdiff import EPSILON, is_number, merged_keys, paired_leaves

if TYPE_CHECKING:
    from gitmodel.reviewgate import ReviewGate

PASS, FAIL, ACCEPTED, INFO = "pass", "fail", "accepted", "info"


@dataclass
class GateRow:
    """One metric of a gate report."""

    metric: str
    baseline: Any
    candidate: Any
    change: float | None            # candidate - baseline
    rule: str                       # e.g. ">= baseline - 0", "<= baseline * 1.5 + 25", "within ±0"
    verdict: str                    # pass | fail | accepted | info
    direction: str | None = None
    kind: str | None = None
    regression: float | None = None  # how much worse than the baseline (> 0), in the metric's units
    allowed: float | None = None     # how much worse the rule lets it be, in the metric's units
    tradeoff: Tradeoff | None = None  # the accepted tradeoff that let it through

    def to_dict(self) -> dict:
        return {"metric": self.metric, "baseline": self.baseline, "candidate": self.candidate,
                "change": self.change, "rule": self.rule, "verdict": self.verdict, "direction": self.direction,
                "kind": self.kind, "regression": self.regression, "allowed": self.allowed,
                "accepted_by": self.tradeoff.metric if self.tradeoff else None}


class JudgedRows:
    """What a gate's rows say together, for a result holding ``rows``: passed, failures, accepted."""

    rows: list[GateRow]

    @property
    def passed(self) -> bool:
        return not self.failures

    @property
    def failures(self) -> list[GateRow]:
        return [r for r in self.rows if r.verdict == FAIL]

    @property
    def accepted(self) -> list[GateRow]:
        return [r for r in self.rows if r.verdict == ACCEPTED]


@dataclass
class GateReport(JudgedRows):
    """The gate of one candidate result against one baseline result (one eval set): a row per metric.

    :func:`gate` fills the rows and tradeoffs; :mod:`gating`, which read the two results, says whose
    they are (model, eval set, the two revisions, their documents, whether the baseline was re-run)."""

    rows: list[GateRow]
    tradeoffs: list[Tradeoff]
    model: str | None = None
    evalset: str | None = None
    baseline: str | None = None          # e.g. "sentiment#prod (sentiment@v1.0.0)"
    candidate: str | None = None         # e.g. "workspace" or "sentiment@v2.0.0"
    baseline_doc: dict | None = None     # the baseline's metrics document (stored, or computed by a re-run)
    candidate_doc: dict | None = None
    rerun: bool = False                  # the baseline was evaluated here, not read from its stored metrics
    rerun_reason: str | None = None      # why: "--rerun", or what made the stored metrics unusable
    policy: str = "params.yaml"          # where tolerances and accepted tradeoffs were read

    @property
    def failed_metrics(self) -> list[str]:
        return [r.metric for r in self.failures]

    @property
    def within_tolerance(self) -> list[GateRow]:
        """Passing metrics that are worse than the baseline, by no more than the rule allows (the
        output PSI rows are not metrics of either side: a PSI under the alert band is no regression)."""
        return [r for r in self.rows if r.verdict == PASS and r.regression is not None
                and not r.metric.startswith(OUTPUT_PSI + ".")]

    def summary(self) -> str:
        """One line: ``pass`` / ``fail``, the failing metrics, the accepted ones."""
        gated = sum(1 for r in self.rows if r.verdict != INFO)
        if self.passed:
            text = f"pass: {gated} gated metrics meet or beat the baseline"
        else:
            text = (f"fail: {len(self.failures)} regression{'s' if len(self.failures) != 1 else ''}: "
                    f"{', '.join(self.failed_metrics)}")
        if self.accepted:
            text += "; accepted tradeoffs: " + ", ".join(r.metric for r in self.accepted)
        return text

    def to_dict(self) -> dict:
        baseline_doc, candidate_doc = self.baseline_doc or {}, self.candidate_doc or {}
        return {"model": self.model, "evalset": self.evalset, "baseline": self.baseline,
                "candidate": self.candidate, "passed": self.passed, "rerun": self.rerun,
                "rerun_reason": self.rerun_reason, "policy": self.policy,
                "baseline_model_md5": (baseline_doc.get("model") or {}).get("md5"),
                "candidate_model_md5": (candidate_doc.get("model") or {}).get("md5"),
                "evalset_md5": (candidate_doc.get("evalset") or {}).get("md5"),
                "rows": [r.to_dict() for r in self.rows], "tradeoffs": [t.to_dict() for t in self.tradeoffs]}


# What a gate run comes to: its reports pass, one fails, nothing holds the baseline stage (the first
# promotion), or the gate could not run (an error recorded by a promotion to a stage that needs no gate).
PASSED, FAILED, NO_BASELINE, NOT_RUN = "passed", "failed", "none", "not run"


@dataclass
class GateOutcome:
    """The result of a gate: ``git model gate`` returns it, and a promotion records it in its tag."""

    model: str
    status: str                          # passed | failed | none | not run
    summary: str                         # one line: the promotion tag's ``Gate:`` trailer
    baseline: str | None = None          # what the candidate was gated against, as shown
    candidate: str | None = None
    reports: list[GateReport] = field(default_factory=list)   # one per eval set
    review: "ReviewGate | None" = None   # the human review of the two versions' outputs (reviewgate.py)

    @property
    def passed(self) -> bool:
        return self.status == PASSED

    def to_dict(self) -> dict:
        return {"model": self.model, "baseline": self.baseline, "candidate": self.candidate,
                "passed": self.passed, "status": self.status, "summary": self.summary,
                "results": [r.to_dict() for r in self.reports],
                "review": self.review.to_dict() if self.review else None}


def summary_line(reports: list[GateReport], against: str, review: "ReviewGate | None" = None) -> str:
    """The verdict against ``against`` in one line and, for each eval set that failed (or passed only
    through accepted tradeoffs), that eval set's own metrics, e.g. ``failed against v1.0.0 (prod): gen:
    output_tokens.mean, output_chars.mean; sem: accuracy``. Eval sets that passed outright are named in
    the passing form only."""
    if not reports:
        return f"not run against {against}: no results to gate"
    if all(r.passed for r in reports) and (review is None or review.passed):
        text = f"passed against {against} on {', '.join(r.evalset for r in reports)}"
    else:
        failing = [f"{r.evalset}: {', '.join(r.failed_metrics)}" for r in reports if not r.passed]
        if review is not None and not review.passed:
            failing.append(f"human review: {', '.join(row.metric for row in review.failures)}")
        text = f"failed against {against}: {'; '.join(failing)}"
    accepted = [f"{r.evalset}: {', '.join(row.metric for row in r.accepted)}" for r in reports if r.accepted]
    if review is not None and review.accepted:
        accepted.append(f"human review: {', '.join(row.metric for row in review.accepted)}")
    if accepted:
        text += f" (accepted tradeoffs: {'; '.join(accepted)})"
    return text


def _num(x: Any) -> str:
    if is_number(x):
        return f"{x:g}" if isinstance(x, float) else str(x)
    return "missing" if x is None else str(x)


def _tolerance_for(key: str, spec, kind: str, tolerances: Mapping[str, Any],
                   quality_default: float, timing_default: float) -> Tolerance:
    declared = spec.pattern if spec else None
    chosen = tolerances.get(key)
    if chosen is None:
        # the most specific pattern wins: the longest one, then the first written
        patterns = [(len(p), -i, p) for i, p in enumerate(tolerances) if p != key and matches(p, key, declared)]
        if patterns:
            chosen = tolerances[max(patterns)[2]]
    if chosen is None and spec is not None and spec.tolerance is not None:
        return Tolerance(*spec.tolerance)     # the metric's own documented default
    if chosen is None:
        chosen = timing_default if kind == "timing" else quality_default
    if isinstance(chosen, Tolerance):
        return chosen
    # a plain number: absolute for quality metrics, relative for timings (noisy, and in any unit)
    return Tolerance(relative=chosen) if kind == "timing" else Tolerance(absolute=chosen)


def rule_text(direction: str, tol: Tolerance) -> str:
    """A rule as a report prints it: ``>= baseline - 0``, ``<= baseline * 1.5 + 25``, ``within ±10 %``."""
    a = _num(tol.absolute)
    if direction == "stable":
        if tol.relative and tol.absolute:
            return f"within ±({_percent(tol.relative)} + {a})"
        return f"within ±{_percent(tol.relative)}" if tol.relative else f"within ±{a}"
    sign = ">=" if direction == "higher" else "<="
    factor = 1 - tol.relative if direction == "higher" else 1 + tol.relative
    base = f"baseline * {_num(round(factor, 9))}" if tol.relative else "baseline"
    if tol.relative and not tol.absolute:
        return f"{sign} {base}"
    return f"{sign} {base} {'-' if direction == 'higher' else '+'} {a}"


def _percent(fraction: float) -> str:
    return f"{fraction * 100:g} %"


def _timing_conditions(baseline: Mapping, candidate: Mapping) -> str | None:
    """Why the two results' timings are not comparable, or None when they are (or nothing says)."""
    old, new = baseline.get("timing_conditions"), candidate.get("timing_conditions")
    if not isinstance(old, Mapping) or not isinstance(new, Mapping) or old == new:
        return None
    changed = [f"{k} {json.dumps(old.get(k))} -> {json.dumps(new.get(k))}"
               for k in merged_keys(list(old), list(new)) if old.get(k) != new.get(k)]
    return "timings measured under other conditions: " + ", ".join(changed)


def _psi_rows(output_psi: Mapping[str, Any], policy: GatePolicy) -> list[GateRow]:
    rows = []
    for signal in PSI_SIGNALS:
        entry = output_psi.get(signal)
        key = f"{OUTPUT_PSI}.{signal}"
        if entry is None:
            continue
        if entry.get("psi") is None:
            rows.append(GateRow(key, None, None, None, f"not gated: insufficient data ({entry['n_expected']} "
                                f"vs {entry['n_actual']} outputs for {entry['bins']} bins)", INFO, "lower",
                                "distribution"))
            continue
        chosen = policy.tolerances.get(key)
        if chosen is None:
            patterns = [(len(p), -i, p) for i, p in enumerate(policy.tolerances) if matches(p, key, None)]
            chosen = policy.tolerances[max(patterns)[2]] if patterns else None
        limit = chosen.absolute if isinstance(chosen, Tolerance) else (policy.psi_alert if chosen is None else chosen)
        psi = entry["psi"]
        row = GateRow(key, 0.0, psi, psi, f"PSI < {_num(limit)}",
                      PASS if psi < limit else FAIL, "lower", "distribution",
                      regression=psi if psi > EPSILON else None, allowed=limit)
        rows.append(row)
    return rows


def gate(baseline: Mapping, candidate: Mapping, policy: GatePolicy | None = None,
         output_psi: Mapping[str, Any] | None = None) -> GateReport:
    """Compare every metric of ``candidate`` with ``baseline`` by its declared direction.

    ``baseline`` / ``candidate`` are metrics documents or their ``metrics``
    sections. ``policy`` is params.yaml ``gate:`` parsed (:meth:`GatePolicy.parse`,
    read by :func:`params.gate_policy`); without one, the defaults of an empty ``gate:``.
    ``output_psi`` is :func:`output_psi` of the baseline's and the candidate's
    outputs on this eval set: each signal becomes a row ``output_psi.<signal>``
    that fails at or above the policy's ``psi_alert`` (0.2) unless a tradeoff accepts it.

    Per metric: higher-is-better passes when ``candidate >= baseline - allowed``,
    lower-is-better when ``candidate <= baseline + allowed``, stable when
    ``|candidate - baseline| <= allowed``, with ``allowed = absolute + relative * |baseline|``.
    The tolerance is params.yaml's for the key (the most specific pattern),
    else the metric's own declared default (metricspecs.MetricSpec.tolerance), else
    the policy's ``quality_tolerance`` (absolute) or ``timing_tolerance`` (relative) by kind; a plain
    number is absolute for quality metrics and relative for timing metrics.
    Info metrics, undeclared keys and metrics new in the candidate are listed as
    ``info`` and never fail; so are timing metrics when the documents'
    ``timing_conditions`` differ (not comparable, not gated); a gated metric of
    the baseline missing from the candidate fails. A failing regression no
    larger than an accepted tradeoff's ``max_regression`` (the first entry whose
    metric or pattern matches) is ``accepted`` instead.
    """
    policy = policy or GatePolicy()
    tradeoffs = policy.fresh_tradeoffs()
    timing_apart = _timing_conditions(baseline, candidate)
    rows = []
    for key, b, c, spec, change, in_base, in_cand in paired_leaves(baseline, candidate):
        direction = spec.direction.value if spec else None
        kind = spec.kind.value if spec else None
        row = GateRow(key, b, c, change, "", INFO, direction, kind)
        rows.append(row)
        if spec is None:
            row.rule = "not gated: no metric declares this key"
            continue
        if direction == "info":
            row.rule = "info: not gated"
            continue
        if not in_base:
            row.rule = "new in the candidate: no baseline"
            continue
        if kind == "timing" and timing_apart:
            row.rule = f"not comparable, not gated: {timing_apart}"
            continue
        tol = _tolerance_for(key, spec, kind, policy.tolerances, policy.quality_tolerance, policy.timing_tolerance)
        row.rule = rule_text(direction, tol)
        if not in_cand or not is_number(c) or not is_number(b):
            row.verdict = FAIL
            row.rule = f"{row.rule}; missing in the candidate" if not in_cand else f"{row.rule}; not a number"
            continue
        worse_by = {"higher": b - c, "lower": c - b}.get(direction, abs(c - b))
        row.regression = worse_by if worse_by > EPSILON else None
        row.allowed = tol.allowed(b)
        row.verdict = PASS if worse_by <= row.allowed + EPSILON else FAIL
        accept_tradeoff(row, tradeoffs, spec.pattern, worse_by)
    for row in _psi_rows(output_psi or {}, policy):
        rows.append(row)
        accept_tradeoff(row, tradeoffs, None, row.regression)
    return GateReport(rows, tradeoffs)


def accept_tradeoff(row: GateRow, tradeoffs: list[Tradeoff], declared: str | None, worse_by: float | None) -> None:
    """Let a failing row through when the first tradeoff naming it covers the regression."""
    if row.verdict != FAIL:
        return
    for tradeoff in tradeoffs:
        if matches(tradeoff.metric, row.metric, declared):
            if worse_by is not None and worse_by <= tradeoff.max_regression + EPSILON:
                row.verdict, row.tradeoff = ACCEPTED, tradeoff
                tradeoff.applied_to.append(row.metric)
            else:
                tradeoff.exceeded.append(row.metric)
            return


def policy_keys(pairs) -> list[str]:
    """The keys a policy may name, over (baseline doc, candidate doc, output_psi or None) of a gate run."""
    keys: list[str] = []
    for baseline, candidate, psi in pairs:
        keys += [key for key, *_ in paired_leaves(baseline, candidate)]
        keys += [f"{OUTPUT_PSI}.{signal}" for signal in PSI_SIGNALS if (psi or {}).get(signal) is not None]
    return list(dict.fromkeys(keys))

