"""``git model gate`` at the command line, and the gate report a refused promotion prints.
Rendering only: the core is :func:`gating.gate_candidate`."""
from __future__ import annotations

import click

from gitmodel.cli.app import EVALSET_NAME, MODEL_NAME, cli, emit_json, json_option
from gitmodel.cli.render import code, md_cell, md_table, number, signed, table, value

GATE_MARKER = "<!-- git-model-gate -->"   # (diff's marker is ci.COMMENT_MARKER: the workflow finds its comment by it)


def _distinct(a: float, b: float) -> tuple[str, str]:
    """``a`` and ``b`` with the fewest significant digits (at least 3) that tell them apart."""
    whole = len(str(int(max(abs(a), abs(b)))))   # never an exponent for the integer part
    for digits in range(max(3, whole + 1), 18):
        x, y = f"{a:.{digits}g}", f"{b:.{digits}g}"
        if x != y or a == b:
            return x, y
    return repr(a), repr(b)


def _rule_text(r) -> str:
    """The rule, and for a row worse than the baseline, by how much against what it allows: enough digits
    to show why a row fails (``worse by 1.1700012 > 1.17 allowed``)."""
    if r.regression is None or r.allowed is None or r.verdict not in ("fail", "accepted"):
        return r.rule
    worse, allowed = _distinct(r.regression, r.allowed)
    sign = ">" if r.regression > r.allowed else "<="
    return f"{r.rule} (worse by {worse} {sign} {allowed} allowed)"


def _gate_rows(report, md: bool = False) -> list[list[str]]:
    rows = []
    for r in report.rows:
        verdict = r.verdict
        if md:
            verdict = {"pass": "✅ pass", "fail": "❌ fail", "accepted": "☑️ accepted", "info": "info"}[verdict]
        name = code(r.metric) if md else r.metric
        rule = md_cell(_rule_text(r)) if md else _rule_text(r)
        change = signed(r.change, 6)
        if r.change is not None and r.regression is not None and r.allowed is not None \
                and number(abs(r.change), 6) == number(float(r.allowed), 6):
            change = ("-" if r.change < 0 else "+") + _distinct(abs(r.change), r.allowed)[0]
        rows.append([name, value(r.baseline, 6), value(r.candidate, 6), change, rule, verdict])
    return rows


def _tradeoff_lines(report) -> list[str]:
    lines = []
    for t in report.tradeoffs:
        used = f"let through: {', '.join(t.applied_to)}" if t.applied_to else "not needed"
        if t.exceeded:
            used += f"; exceeded by: {', '.join(t.exceeded)}"
        lines.append(f"  {t.metric}: up to {number(t.max_regression, 6)} worse ({used})")
        lines.append(f"    rationale: {t.rationale}")
    return lines


def _gate_verdict(r) -> str:
    if r.passed:
        accepted = f", {len(r.accepted)} through accepted tradeoffs" if r.accepted else ""
        gated = sum(1 for row in r.rows if row.verdict != "info")
        return f"PASS: {r.model} on {r.evalset}: all {gated} gated metrics meet or beat the baseline{accepted}"
    failed = r.failed_metrics
    return (f"FAIL: {r.model} on {r.evalset}: {len(failed)} regression{'s' if len(failed) != 1 else ''}: "
            f"{', '.join(failed)}")


def _side_text(side) -> str:
    if side is None or not side.reviewed:
        return "not reviewed"
    return f"{side.version}, n {side.n}, from {side.source}"


def _review_failure(row) -> str:
    return f"{row.metric} {value(row.baseline, 4)} -> {value(row.candidate, 4)}"


def _review_verdict(review, model: str) -> str:
    b = review.baseline.n if review.baseline and review.baseline.reviewed else 0
    c = review.candidate.n if review.candidate and review.candidate.reviewed else 0
    if review.failures:
        if review.way_out:
            return f"FAIL: human review of {model}: {review.note} (gate.require_review)"
        failed = ", ".join(_review_failure(r) for r in review.failures)
        return f"FAIL: human review of {model}: {failed} (n {b} vs {c})"
    if not review.judged:
        return f"NOT JUDGED: human review of {model}: {review.note}"
    accepted = f", {len(review.accepted)} through accepted tradeoffs" if review.accepted else ""
    return f"PASS: human review of {model}: no criterion's mean dropped beyond the tolerance (n {b} vs {c}){accepted}"


def render_review_text(outcome) -> None:
    review = outcome.review
    if review is None:
        return
    click.echo("")
    if review.passed and not (review.candidate and review.candidate.reviewed):
        click.echo(f"NOT JUDGED: human review of {outcome.model}: {review.note} (gate.require_review: true "
                   "would refuse it)")
        return
    click.echo(f"Human review: {outcome.model}: candidate {outcome.candidate} ({_side_text(review.candidate)}) "
               f"vs baseline {outcome.baseline} ({_side_text(review.baseline)})")
    click.echo(table(_gate_rows(review), ["Metric", "Baseline", "Candidate", "Change", "Rule", "Verdict"],
                      ("left", "right", "right", "right", "left", "left")))
    if review.tradeoffs and (review.accepted or any(t.exceeded for t in review.tradeoffs)):
        click.echo("Accepted tradeoffs (params.yaml gate.accept):")
        for line in _tradeoff_lines(review):
            click.echo(line)
    click.echo(_review_verdict(review, outcome.model))
    if review.way_out:
        click.echo(f"  the way out: {review.way_out}")


def render_gate_text(outcome) -> None:
    """The gate's report per eval set: the rows, the tradeoffs, the verdict; then the human review."""
    for i, r in enumerate(outcome.reports):
        if i:
            click.echo("")
        click.echo(f"Gate: {r.model} on {r.evalset}: candidate {r.candidate} vs baseline {r.baseline}")
        if r.rerun:
            click.echo(f"  baseline re-evaluated on the candidate's eval set ({r.rerun_reason})")
        click.echo(table(_gate_rows(r), ["Metric", "Baseline", "Candidate", "Change", "Rule", "Verdict"],
                          ("left", "right", "right", "right", "left", "left")))
        if any(row.metric.startswith("output_psi.") for row in r.rows):
            click.echo(_psi_note())
        if r.tradeoffs:
            click.echo(f"Accepted tradeoffs ({r.policy.split(' ')[0]} gate.accept):")
            for line in _tradeoff_lines(r):
                click.echo(line)
        click.echo(_gate_verdict(r))
    render_review_text(outcome)


def _psi_note() -> str:
    from gitmodel.drift import SMOOTHING_TEXT

    return ("output_psi.*: PSI of the candidate's outputs (answered labels, confidences, output lengths) against "
            f"the baseline's on the same eval set, {SMOOTHING_TEXT}; at or above the alert band it fails")


def _render_gate_md(outcome) -> None:
    results = outcome.reports
    first = results[0]
    passed = outcome.passed
    lines = [GATE_MARKER, f"### git-model gate: {code(first.model)} — {code(first.candidate)} "
             f"vs {code(first.baseline)}", ""]
    failing = [f"{md_cell(r.evalset)}: " + ", ".join(code(m) for m in r.failed_metrics) for r in results if not r.passed]
    if outcome.review is not None and not outcome.review.passed:
        failing.append("human review: " + ", ".join(code(row.metric) for row in outcome.review.failures))
    lines.append("✅ **Gate passed**" if passed else "❌ **Gate failed**: " + "; ".join(failing))
    for r in results:
        lines += ["", f"#### {md_cell(r.model)} on {md_cell(r.evalset)}", ""]
        if r.rerun:
            lines += [f"Baseline re-evaluated on the candidate's eval set ({md_cell(r.rerun_reason)}).", ""]
        lines += md_table(_gate_rows(r, md=True), ["metric", "baseline", "candidate", "change", "rule", ""],
                           ("left", "right", "right", "right", "left", "left"))
        if any(row.metric.startswith("output_psi.") for row in r.rows):
            lines += ["", f"<sub>{md_cell(_psi_note())}</sub>"]
        if r.tradeoffs:
            lines += ["", "**Accepted tradeoffs** (params.yaml `gate.accept`):", ""]
            for t in r.tradeoffs:
                used = ", ".join(code(m) for m in t.applied_to) or "not needed"
                lines.append(f"- {code(t.metric)} up to {number(t.max_regression, 6)} worse "
                             f"(let through: {used}): {md_cell(t.rationale)}")
    lines += _review_md(outcome)
    click.echo("\n".join(lines))


def _review_md(outcome) -> list[str]:
    review = outcome.review
    if review is None:
        return []
    lines = ["", "#### Human review", "",
             f"Candidate: {md_cell(_side_text(review.candidate))} · baseline: {md_cell(_side_text(review.baseline))}", ""]
    lines += md_table(_gate_rows(review, md=True), ["criterion", "baseline", "candidate", "change", "rule", ""],
                      ("left", "right", "right", "right", "left", "left"))
    lines += ["", md_cell(_review_verdict(review, outcome.model), 1000)]
    if review.way_out:
        lines.append(f"The way out: {md_cell(review.way_out, 1000)}")
    for t in review.tradeoffs:
        if t.applied_to:
            lines.append(f"- {code(t.metric)} accepted up to {number(t.max_regression, 6)} worse: {md_cell(t.rationale)}")
    return lines


@cli.command("gate")
@click.argument("model", type=MODEL_NAME)
@click.option("--baseline", metavar="REF", help="What the candidate must meet or beat (default: MODEL#prod).")
@click.option("--candidate", metavar="REF", default="workspace", show_default=True,
              help="The results to gate: MODEL@vX.Y.Z, MODEL@latest, MODEL#stage, any git revision, or the "
                   "workspace.")
@click.option("--evalset", "-e", type=EVALSET_NAME,
              help="Gate on this eval set only (default: every eval set the candidate has).")
@json_option
@click.option("--md", "as_md", is_flag=True, help="Print a GitHub-flavoured Markdown report.")
@click.option("--rerun", is_flag=True,
              help="Evaluate the baseline checkpoint (from the DVC cache) on the candidate's eval set and params.")
@click.pass_context
def gate_cmd(ctx, model, baseline, candidate, evalset, as_json, as_md, rerun) -> None:
    """Pass or fail a candidate against the baseline, metric by metric.

    Both results must come from the identical eval set (md5) and eval
    params. When the baseline's stored metrics are on another eval set
    version, or with --rerun, the baseline checkpoint itself is evaluated on
    the candidate's eval set, from the DVC cache (the workspace is not
    touched). Every metric is compared by its declared direction with the
    tolerances of params.yaml gate: (quality metrics exactly by default,
    calibration.ece within 0.02, output length within 10 %, timings within
    50 %; confidence is monitored, not gated), and the PSI of the candidate's
    outputs against the baseline's must stay under 0.2; accepted tradeoffs
    (gate.accept, with a rationale) let a chosen regression through and are
    listed.

    The human review (metrics/MODEL/review.json, `git model review
    import`) of each side's checkpoint is gated too: a rubric criterion's
    mean may drop by gate.review_tolerance (0.25) at most (rows
    review.<criterion>, accepted tradeoffs apply); fewer than
    gate.review_min_n (20) reviews on a side are reported, not judged; a
    candidate nobody reviewed is reported, and refused only with
    gate.require_review: true. Exit 0 pass, 1 fail.

    \b
    Examples:
      git model gate chat
      git model gate chat --candidate chat@v1.4.0 --md > gate.md
      git model gate chat --baseline chat@v1.2.0 --rerun
    """
    from gitmodel import gating
    from gitmodel.cli.evaluation import progress_factory

    if as_json and as_md:
        raise click.UsageError("--json and --md cannot be used together")
    outcome = gating.gate_candidate(model, baseline=baseline, candidate=candidate, evalset=evalset, rerun=rerun,
                                    progress_factory=progress_factory())
    if as_json:
        emit_json(outcome.to_dict())
    elif as_md:
        _render_gate_md(outcome)
    else:
        render_gate_text(outcome)
    ctx.exit(0 if outcome.passed else 1)
