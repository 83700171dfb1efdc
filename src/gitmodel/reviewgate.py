"""The gate's rule for the human review, pure: the review of the candidate's checkpoint against the
baseline's (:class:`reviewmetric.ReviewSide` each), a row ``review.<criterion>`` per rubric criterion under
the policy's ``review_tolerance``, ``review_min_n`` and ``require_review``, tradeoffs applied as to any metric.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from gitmodel.gatepolicy import REVIEW, GatePolicy, Tolerance, Tradeoff, matches
from gitmodel.gaterules import FAIL, INFO, PASS, GateRow, JudgedRows, accept_tradeoff, rule_text
from gitmodel.metricdiff import EPSILON, is_number


@dataclass
class ReviewGate(JudgedRows):
    """The human review of the candidate's outputs against the baseline's: a row per rubric criterion
    (``review.<criterion>``, higher is better), or one row saying why nothing was judged."""

    rows: list[GateRow]
    tradeoffs: list[Tradeoff]
    baseline: Any = None                 # reviewmetric.ReviewSide of the baseline (None: no review file)
    candidate: Any = None
    judged: bool = False                 # both sides reviewed, each by at least review_min_n
    note: str = ""                       # why not judged, or "" when judged
    way_out: str | None = None           # for a refusal by gate.require_review

    def to_dict(self) -> dict:
        return {"passed": self.passed, "judged": self.judged, "note": self.note or None, "way_out": self.way_out,
                "baseline": self.baseline.to_dict() if self.baseline else None,
                "candidate": self.candidate.to_dict() if self.candidate else None,
                "rows": [r.to_dict() for r in self.rows], "tradeoffs": [t.to_dict() for t in self.tradeoffs]}


def review_gate(baseline, candidate, policy: GatePolicy | None = None, model: str = "MODEL") -> ReviewGate:
    """The human review of the candidate's outputs against the baseline's (:class:`reviewmetric.ReviewSide`
    each, None when no review file was found), pure.

    Per rubric criterion, a row ``review.<criterion>`` that fails when the candidate's mean is lower than
    the baseline's by more than the tolerance (params.yaml ``gate.tolerance`` for the key, else
    ``gate.review_tolerance``) unless a tradeoff accepts it. A candidate nobody reviewed is reported, not
    judged; with ``gate.require_review`` it fails. Either side reviewed fewer than ``gate.review_min_n``
    times, or a baseline nobody reviewed: the means are reported, not judged.
    """
    policy = policy or GatePolicy()
    tradeoffs = policy.fresh_tradeoffs()
    gate = ReviewGate([], tradeoffs, baseline, candidate)
    if candidate is None or not candidate.reviewed:
        why = candidate.note if candidate is not None else "no review imported"
        if policy.require_review:
            gate.rows.append(GateRow(REVIEW, None, None, None, f"required (gate.require_review): {why}", FAIL))
            gate.way_out = (f"review a sample of the candidate's outputs: `git model sample {model} --evalset NAME "
                            "--n N -o FILE`, score it, `git model review import FILE` and commit")
        else:
            gate.rows.append(GateRow(REVIEW, None, None, None, f"not reviewed: {why}", INFO))
        gate.note = f"candidate not reviewed: {why}"
        return gate
    criteria = list(dict.fromkeys([*(baseline.mean if baseline else {}), *candidate.mean]))
    reviewed = baseline is not None and baseline.reviewed
    few = [f"{side} {s.n}" for side, s in (("baseline", baseline), ("candidate", candidate))
           if s is not None and s.reviewed and s.n < policy.review_min_n]
    if not reviewed:
        gate.note = f"baseline not reviewed: {baseline.note if baseline else 'no review imported'}"
    elif few:
        gate.note = f"not judged: fewer than gate.review_min_n ({policy.review_min_n}) reviews: {', '.join(few)}"
    gate.judged = not gate.note
    for criterion in criteria:
        key = f"{REVIEW}.{criterion}"
        b = baseline.mean.get(criterion) if reviewed else None
        c = candidate.mean.get(criterion)
        change = round(c - b, 6) if is_number(b) and is_number(c) else None
        n = f"n {baseline.n if reviewed else 0} vs {candidate.n}"
        row = GateRow(key, b, c, change, "", INFO, "higher", "review")
        gate.rows.append(row)
        if not gate.judged:
            row.rule = f"{gate.note} ({n})"
            continue
        chosen = policy.tolerances.get(key)
        if chosen is None:
            patterns = [(len(p), -i, p) for i, p in enumerate(policy.tolerances) if matches(p, key, None)]
            chosen = policy.tolerances[max(patterns)[2]] if patterns else None
        tol = chosen if isinstance(chosen, Tolerance) else Tolerance(
            absolute=policy.review_tolerance if chosen is None else chosen)
        row.rule = f"{rule_text('higher', tol)} ({n})"
        if not is_number(c) or not is_number(b):
            row.verdict, row.rule = FAIL, f"{row.rule}; {'missing in the candidate' if b is not None else 'no baseline'}"
            if b is None:
                row.verdict = INFO
            continue
        worse_by = b - c
        row.regression = worse_by if worse_by > EPSILON else None
        row.allowed = tol.allowed(b)
        row.verdict = PASS if worse_by <= row.allowed + EPSILON else FAIL
        accept_tradeoff(row, tradeoffs, None, worse_by)
    return gate
