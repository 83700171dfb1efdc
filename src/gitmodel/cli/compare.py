"""Commands that compare: diff, gate. Rendering only: tables, pull-request Markdown, JSON."""
from __future__ import annotations

import click

from gitmodel.cli.app import EVALSET_NAME, MODEL_NAME, cli, emit_json, json_option, plural

GATE_MARKER = "<!-- git-model-gate -->"   # (diff's marker is ci.COMMENT_MARKER: the workflow finds its comment by it)
MD_MAX_EXAMPLES = 50                      # per list in a comment: a PR comment holds 65,536 characters
MD_MAX_CELL = 160


# ----------------------------------------------------------------------------- formatting


def _number(value, precision: int) -> str:
    if isinstance(value, float):
        text = f"{round(value, precision):.{precision}f}"
        if "." in text:
            text = text.rstrip("0").rstrip(".")
        return "0" if text in ("-0", "") else text
    return str(value)


def _value(value, precision: int) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return str(value).lower()
    return _number(value, precision)


def _signed(change, precision: int) -> str:
    if change is None:
        return ""
    text = _number(change, precision)
    return text if text.startswith("-") or text == "0" else f"+{text}"


def table(rows: list[list[str]], headers: list[str], align: tuple[str, ...]) -> str:
    """The text table: the same characters as ``tabulate(rows, headers, tablefmt="simple",
    disable_numparse=True, colalign=align)`` (a unit test holds them equal), without importing
    tabulate, whose import reads package metadata (~40 ms) on the path `diff` must run fast."""
    widths = [max([len(h) + 2] + [len(row[i]) for row in rows]) for i, h in enumerate(headers)]

    def line(cells) -> str:
        return "  ".join(c.rjust(w) if a == "right" else c.ljust(w)
                         for c, w, a in zip(cells, widths, align)).rstrip()

    return "\n".join([line(headers), "  ".join("-" * w for w in widths).rstrip(), *map(line, rows)])


def _md_cell(text, limit: int = MD_MAX_CELL) -> str:
    """Text safe in a GitHub table cell: no HTML, no column break, one line, bounded."""
    text = "" if text is None else str(text)
    if len(text) > limit:
        text = text[:limit - 1] + "…"
    for plain, escaped in (("&", "&amp;"), ("<", "&lt;"), (">", "&gt;"), ("|", "\\|"), ("`", "'")):
        text = text.replace(plain, escaped)
    return text.replace("\r", "").replace("\n", "<br>")


def _code(text) -> str:
    # backslashes do not escape inside a code span: a backtick becomes a quote
    return "`" + str(text).replace("`", "'").replace("|", "\\|").replace("\n", " ") + "`"


def _md_table(rows: list[list[str]], headers: list[str], align: tuple[str, ...]) -> list[str]:
    marks = {"left": "---", "right": "---:", "center": ":---:"}
    lines = ["| " + " | ".join(headers) + " |", "| " + " | ".join(marks[a] for a in align) + " |"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return lines


def _where(f) -> str:
    return f"{f.model} on {f.evalset}"


# ----------------------------------------------------------------------------- diff


def _metric_rows(files, show_all: bool, precision: int, md: bool = False) -> list[list[str]]:
    rows = []
    for f in files:
        for r in f.rows if show_all else f.changed_rows:
            verdict = "" if r.verdict == "same" else r.verdict
            if md:
                verdict = {"better": "🟢 better", "worse": "🔴 worse"}.get(verdict, verdict)
                name = _code(r.key)
                rows.append([name, _value(r.old, precision), _value(r.new, precision), _signed(r.change, precision),
                             verdict])
            else:
                rows.append([f.path, r.key, _value(r.old, precision), _value(r.new, precision),
                             _signed(r.change, precision), verdict])
    return rows


def _not_comparable_lines(result, explain: bool = True) -> list[str]:
    lines = [f"NOT COMPARABLE: {f.path} ({_where(f)}): {f.reason}" for f in result.not_comparable]
    if lines and explain:
        lines.append("  The numbers below come from different inputs: a change is not the checkpoint's doing.")
    return lines


def _stale_lines(result, explain: bool = True) -> list[str]:
    lines = [f"STALE: {reason}" for f in result.stale for reason in f.stale.values()]
    if lines and explain:
        lines.append("  Those metrics do not describe the checkpoint their revision tracks: re-evaluate "
                     "(`git model eval MODEL --evalset NAME` or `dvc repro`) and commit before trusting the diff.")
    return lines


_LISTS = (("wrong_to_correct", "wrong -> correct"), ("correct_to_wrong", "correct -> wrong"),
          ("label_changed", "label changed"), ("generation_changed", "generation changed"))


def _psi_value(entry: dict | None) -> str:
    if entry is None:
        return "n/a"
    return entry["band"] if entry["psi"] is None else f"{entry['psi']:.4f} ({entry['band']})"


def _psi_text(psi: dict) -> str:
    from gitmodel.drift import SMOOTHING_TEXT

    parts = [f"{name} {_psi_value(psi.get(key))}"
             for key, name in (("output_tokens", "output length"), ("confidence", "confidence"), ("label", "labels"))]
    return " · ".join(parts) + f" ({SMOOTHING_TEXT})"


def _one_sided(result, f, md: bool = False) -> str | None:
    """A line for a result present at one revision only."""
    old, new = (_code(result.old.label), _code(result.new.label)) if md else (result.old.label, result.new.label)
    where = "" if md else f"{f.path}: "
    if f.old is None:
        return f"{where}new at {new} (nothing at {old})"
    if f.new is None:
        return f"{where}gone at {new} (only at {old})"
    return None


def _behaviour_text(result, f) -> list[str]:
    b = f.behaviour
    old, new = result.old.label, result.new.label
    lines = [f"Behaviour of {_where(f)} ({plural(b['matched'], 'example')} at both revisions):"]
    if not b["matched"]:   # one side only: every id would be listed, and nothing compared
        return lines + [f"  only at {old}: {len(b['only_old'])} · only at {new}: {len(b['only_new'])}"]
    counts = [f"{name} {len(b[key])}" for key, name in _LISTS]
    counts += [f"only at {old} {len(b['only_old'])}", f"only at {new} {len(b['only_new'])}"]
    lines.append("  " + " · ".join(counts))
    # each example once, with everything that changed for it
    width = max((len(i) for i in b["changes"]), default=0)
    for id_, changes in b["changes"].items():
        lines.append(f"  {id_:<{width}}  {', '.join(changes)}")
    for key, name in (("only_old", f"only at {old}"), ("only_new", f"only at {new}")):
        if b[key]:
            import textwrap

            wrapped = textwrap.wrap(" ".join(b[key]), width=100, break_on_hyphens=False)
            lines.append(f"  {name}: {wrapped[0]}")
            lines += ["    " + line for line in wrapped[1:]]
    lines.append(f"  PSI {old} -> {new}: {_psi_text(b['psi'])}")
    return lines


def _render_diff_text(result, show_all: bool, precision: int, examples: bool) -> None:
    if not result.files:
        click.echo(f"No stored metrics at {result.old.label} or {result.new.label}.")
        return
    for line in (_stale_lines(result) + _not_comparable_lines(result)
                 + [x for x in (_one_sided(result, f) for f in result.files) if x]):
        click.echo(line)
    rows = _metric_rows(result.files, show_all, precision)
    if rows:
        click.echo(table(rows, ["Path", "Metric", result.old.label, result.new.label, "Change", "Verdict"],
                          ("left", "left", "right", "right", "right", "left")))
    else:
        click.echo(f"No metric changes between {result.old.label} and {result.new.label} "
                   f"({len(result.files)} result{'s' if len(result.files) != 1 else ''} compared).")
    if examples:
        for f in result.files:
            if f.behaviour is not None:
                click.echo("")
                for line in _behaviour_text(result, f):
                    click.echo(line)


def _shown(side: dict | None, precision: int) -> str:
    if side is None:
        return "-"
    mark = {True: "✓ ", False: "✗ "}.get(side.get("correct"), "")
    answer = side.get("label") if side.get("label") is not None else side.get("output")
    conf = side.get("confidence")
    conf = f" ({_number(conf, min(precision, 2))})" if isinstance(conf, (int, float)) else ""
    return f"{mark}{_md_cell(answer)}{conf}"


def _md_examples(result, f, precision: int, cap: int) -> list[str]:
    """The flipped examples of one result: at most ``cap`` rows per list, the rest counted."""
    b = f.behaviour
    old, new = result.old.label, result.new.label
    flips = [f"{len(b['wrong_to_correct'])} wrong → correct", f"{len(b['correct_to_wrong'])} correct → wrong",
             f"{len(b['label_changed'])} label changes", f"{len(b['generation_changed'])} changed generations"]
    lines = ["", f"<details><summary>Examples of {_md_cell(_where(f))}: {', '.join(flips)}</summary>", ""]
    titles = {"wrong_to_correct": "Wrong → correct", "correct_to_wrong": "Correct → wrong",
              "label_changed": "Label changed", "generation_changed": "Generation changed"}
    flipped = set(b["wrong_to_correct"]) | set(b["correct_to_wrong"])
    for key, _ in _LISTS:
        ids = b[key]
        if key == "label_changed":   # the flips are listed above: show the other label changes
            ids = [i for i in ids if i not in flipped]
            titles[key] = "Other label changes"
        if not ids:
            continue
        lines.append(f"**{titles[key]} ({len(ids)})**")
        lines.append("")
        rows = [[_code(i), _md_cell(b["examples"][i].get("input", "")),
                 _md_cell(b["examples"][i].get("expected", "")), _shown(b["examples"][i]["old"], precision),
                 _shown(b["examples"][i]["new"], precision)] for i in ids[:cap]]
        if rows:
            lines += _md_table(rows, ["id", "input", "expected", _code(old), _code(new)],
                               ("left", "left", "left", "left", "left"))
        if len(ids) > cap:
            lines += ["", f"… and {len(ids) - cap} more ({_FULL_REPORT})"]
        lines.append("")
    for key, name in (("only_old", f"Only at {_code(old)}"), ("only_new", f"Only at {_code(new)}")):
        if b[key]:
            shown = ", ".join(_code(i) for i in b[key][:cap])
            more = f" … and {len(b[key]) - cap} more" if len(b[key]) > cap else ""
            lines += [f"**{name} ({len(b[key])})**: {shown}{more}", ""]
    psi_rows = []
    for key, name in (("output_tokens", "output length"), ("confidence", "confidence"), ("label", "labels")):
        entry = b["psi"].get(key)
        value = "n/a" if entry is None else ("-" if entry["psi"] is None else f"{entry['psi']:.4f}")
        psi_rows.append([name, value, entry["band"] if entry else ""])
    from gitmodel.drift import SMOOTHING_TEXT

    lines += [f"PSI of the distributions, {_code(old)} → {_code(new)} (0.1 moderate, 0.2 significant; "
              f"{SMOOTHING_TEXT}):", ""]
    lines += _md_table(psi_rows, ["distribution", "PSI", "band"], ("left", "right", "left"))
    lines += ["", "</details>"]
    return lines


def _md_verdict(result) -> list[str]:
    regressions = [(f, r) for f in result.files if f.gate for r in f.gate.failures]
    accepted = [(f, r) for f in result.files if f.gate for r in f.gate.accepted]
    within = [(f, r) for f in result.files if f.gate for r in f.gate.within_tolerance]
    several = len(result.files) > 1

    def name(f, r) -> str:
        return _code(f"{f.model}/{f.evalset}: {r.metric}" if several else r.metric)

    lines = []
    if regressions:
        lines.append(f"❌ **{len(regressions)} regression{'s' if len(regressions) != 1 else ''}** beyond the gate's "
                     "tolerances: " + ", ".join(name(f, r) for f, r in regressions))
    for f in result.stale:
        for reason in f.stale.values():
            lines.append(f"⚠️ **STALE METRICS** ({_md_cell(_where(f))}): {_md_cell(reason, 1000)}. These numbers do not "
                         "describe the checkpoint: re-evaluate and commit before trusting this diff.")
    for f in result.not_comparable:
        lines.append(f"⚠️ **NOT COMPARABLE** ({_md_cell(_where(f))}): {_md_cell(f.reason, 1000)}. The numbers below "
                     "come from different inputs: a change is not the checkpoint's doing.")
    if not regressions and not result.not_comparable and not result.stale:
        if within:
            lines.append("☑️ **Within tolerance**: no metric is worse than the gate's tolerances allow, but "
                         f"{len(within)} {'is' if len(within) == 1 else 'are'} worse than before: "
                         + ", ".join(name(f, r) for f, r in within) + " (params.yaml `gate:`)")
        else:
            lines.append("✅ **No regressions**: no gated metric is worse (params.yaml `gate:`)")
    for f, r in accepted:
        lines.append(f"☑️ Accepted tradeoff {name(f, r)}: {_md_cell(r.tradeoff.rationale)}")
    return lines


# GitHub refuses a comment over 65,536 characters; the budget keeps room for what a workflow adds.
MD_LIMIT = 65_536
MD_BUDGET = 60_000
_FULL_REPORT = ("the full report: `git model diff --examples`; the model-diff workflow uploads it as the "
                "`model-diff-report` artifact")


def _diff_md(result, show_all: bool, precision: int, cap: int) -> list[str]:
    old, new = result.old.label, result.new.label
    from gitmodel.ci import COMMENT_MARKER

    lines = [COMMENT_MARKER, f"### git-model diff: {_code(old)} → {_code(new)}", ""]
    if not result.files:
        return lines + [f"No stored metrics at {_code(old)} or {_code(new)}."]
    lines += _md_verdict(result)
    for f in result.files:
        lines += ["", f"#### {_md_cell(_where(f))} — {_code(f.path)}", ""]
        one_sided = _one_sided(result, f, md=True)
        if one_sided:
            lines += [f"{one_sided[0].upper()}{one_sided[1:]}.", ""]
        rows = _metric_rows([f], show_all, precision, md=True)
        if rows:
            lines += _md_table(rows, ["metric", _code(old), _code(new), "change", ""],
                               ("left", "right", "right", "right", "left"))
        else:
            lines.append("No metric changed.")
        if f.behaviour is not None and f.behaviour["matched"] > 0:
            lines += _md_examples(result, f, precision, cap)
    return lines + ["", f"<sub>{_code(f'git model diff {result.old.text} {result.new.text} --md')}</sub>"]


def render_diff_md(result, show_all: bool, precision: int) -> str:
    """The pull-request comment, under :data:`MD_BUDGET` characters whatever the diff: fewer example rows
    first, then the tail cut at a line with a count of what was left out and where the full report is."""
    for cap in (MD_MAX_EXAMPLES, 20, 5, 0):
        text = "\n".join(_diff_md(result, show_all, precision, cap))
        if len(text) <= MD_BUDGET:
            return text
    lines, kept, size = text.split("\n"), [], 0
    note_room = 600
    for line in lines:
        if size + len(line) + 1 > MD_BUDGET - note_room:
            break
        kept.append(line)
        size += len(line) + 1
    left = len(lines) - len(kept)
    if sum(x.startswith("<details>") for x in kept) > sum(x == "</details>" for x in kept):
        kept.append("</details>")
    kept += ["", f"✂️ **Truncated**: {left} more lines ({len(text) - size} characters) do not fit in a comment; "
             f"{_FULL_REPORT}."]
    return "\n".join(kept)


def _render_diff_md(result, show_all: bool, precision: int) -> None:
    click.echo(render_diff_md(result, show_all, precision))


def _diff_json(result, examples: bool) -> None:
    import os

    # stdout keeps dvc's shape; the loud part goes to stderr (the eval set md5 and params that differ
    # are in the shape already, as changed keys)
    for line in _stale_lines(result, explain=False) + _not_comparable_lines(result, explain=False):
        click.echo(f"Warning: {line}", err=True)
    data = result.dvc_json()
    if not examples:
        emit_json(data)   # exactly `dvc metrics diff --json`
        return
    shown = {f.path: os.path.relpath(result.root / f.path) for f in result.files}
    emit_json({
        "metrics": data,
        "comparability": {shown[f.path]: {"comparable": f.comparable, "reason": f.reason or None}
                          for f in result.files},
        "stale": {shown[f.path]: f.stale for f in result.files if f.stale},
        "behaviour": {shown[f.path]: f.behaviour for f in result.files if f.behaviour is not None},
    })


@cli.command("diff")
@click.argument("a", required=False, metavar="[A]")
@click.argument("b", required=False, metavar="[B]")
@click.option("--model", "-m", type=MODEL_NAME, help="Only this model's results (implied by a registry reference such as chat@v1.2.0).")
@click.option("--evalset", "-e", type=EVALSET_NAME, help="Only results on this eval set.")
@json_option
@click.option("--md", "as_md", is_flag=True, help="Print a GitHub-flavoured Markdown pull-request comment.")
@click.option("--all", "show_all", is_flag=True, help="Show unchanged metrics too (as `dvc metrics diff --all`).")
@click.option("--examples", is_flag=True,
              help="Add the behavioural diff: which examples flipped, label and generation changes, PSI.")
@click.option("--precision", type=click.IntRange(0, 15), default=5, show_default=True,
              help="Round numbers to this many decimals in the table and the comment (not in --json).")
def diff_cmd(a, b, model, evalset, as_json, as_md, show_all, examples, precision) -> None:
    """Compare the stored metrics of two revisions, better / worse by each metric's direction.

    A and B are git revisions, `workspace`, or registry references
    (MODEL@vX.Y.Z, MODEL@latest, MODEL#STAGE). As `git diff`: no argument
    compares HEAD with the workspace, one compares A with the workspace.
    Everything is read from git objects; nothing is checked out.

    When the two results were computed on different eval set md5s or eval
    params, a NOT COMPARABLE line says so above the numbers; when a side's
    metrics were measured on another model or eval set md5 than its revision
    tracks, a STALE line does (and --md gives no green verdict). --json prints
    exactly what `dvc metrics diff --json` prints (the eval set md5 and params
    appear in it as changed keys, and the warning goes to stderr); with
    --examples it becomes {"metrics": <that>, "comparability": ..., "behaviour": ...}.
    --md prints a pull-request comment with a verdict line by the gate's
    tolerances (params.yaml gate:) and the flipped examples, cut to fit
    GitHub's 65,536 characters (the full report: --examples).

    \b
    Examples:
      git model diff
      git model diff chat@v1.2.0 chat@v1.3.0
      git model diff chat#prod --examples
      git model diff origin/main HEAD --md > comment.md
    """
    from gitmodel import diffing

    if as_json and as_md:
        raise click.UsageError("--json and --md cannot be used together")
    result = diffing.diff(a, b, model=model, evalset=evalset, all=show_all, examples=examples or as_md,
                          verdict=as_md)
    if as_json:
        _diff_json(result, examples)
    elif as_md:
        _render_diff_md(result, show_all, precision)
    else:
        _render_diff_text(result, show_all, precision, examples)


# ----------------------------------------------------------------------------- gate


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
        name = _code(r.metric) if md else r.metric
        rule = _md_cell(_rule_text(r)) if md else _rule_text(r)
        change = _signed(r.change, 6)
        if r.change is not None and r.regression is not None and r.allowed is not None \
                and _number(abs(r.change), 6) == _number(float(r.allowed), 6):
            change = ("-" if r.change < 0 else "+") + _distinct(abs(r.change), r.allowed)[0]
        rows.append([name, _value(r.baseline, 6), _value(r.candidate, 6), change, rule, verdict])
    return rows


def _tradeoff_lines(report) -> list[str]:
    lines = []
    for t in report.tradeoffs:
        used = f"let through: {', '.join(t.applied_to)}" if t.applied_to else "not needed"
        if t.exceeded:
            used += f"; exceeded by: {', '.join(t.exceeded)}"
        lines.append(f"  {t.metric}: up to {_number(t.max_regression, 6)} worse ({used})")
        lines.append(f"    rationale: {t.rationale}")
    return lines


def _gate_verdict(r) -> str:
    if r.passed:
        accepted = f", {len(r.report.accepted)} through accepted tradeoffs" if r.report.accepted else ""
        gated = sum(1 for row in r.report.rows if row.verdict != "info")
        return f"PASS: {r.model} on {r.evalset}: all {gated} gated metrics meet or beat the baseline{accepted}"
    return (f"FAIL: {r.model} on {r.evalset}: {len(r.failures)} regression{'s' if len(r.failures) != 1 else ''}: "
            f"{', '.join(r.failures)}")


def render_gate_text(results) -> None:
    for i, r in enumerate(results):
        if i:
            click.echo("")
        click.echo(f"Gate: {r.model} on {r.evalset}: candidate {r.candidate} vs baseline {r.baseline}")
        if r.rerun:
            click.echo(f"  baseline re-evaluated on the candidate's eval set ({r.rerun_reason})")
        click.echo(table(_gate_rows(r.report), ["Metric", "Baseline", "Candidate", "Change", "Rule", "Verdict"],
                          ("left", "right", "right", "right", "left", "left")))
        if any(row.metric.startswith("output_psi.") for row in r.report.rows):
            click.echo(_psi_note())
        if r.report.tradeoffs:
            click.echo(f"Accepted tradeoffs ({r.policy.split(' ')[0]} gate.accept):")
            for line in _tradeoff_lines(r.report):
                click.echo(line)
        click.echo(_gate_verdict(r))


def _psi_note() -> str:
    from gitmodel.drift import SMOOTHING_TEXT

    return ("output_psi.*: PSI of the candidate's outputs (answered labels, confidences, output lengths) against "
            f"the baseline's on the same eval set, {SMOOTHING_TEXT}; at or above the alert band it fails")


def _render_gate_md(results) -> None:
    first = results[0]
    passed = all(r.passed for r in results)
    lines = [GATE_MARKER, f"### git-model gate: {_code(first.model)} — {_code(first.candidate)} "
             f"vs {_code(first.baseline)}", ""]
    lines.append("✅ **Gate passed**" if passed else "❌ **Gate failed**: " + "; ".join(
        f"{_md_cell(r.evalset)}: " + ", ".join(_code(m) for m in r.failures) for r in results if not r.passed))
    for r in results:
        lines += ["", f"#### {_md_cell(r.model)} on {_md_cell(r.evalset)}", ""]
        if r.rerun:
            lines += [f"Baseline re-evaluated on the candidate's eval set ({_md_cell(r.rerun_reason)}).", ""]
        lines += _md_table(_gate_rows(r.report, md=True), ["metric", "baseline", "candidate", "change", "rule", ""],
                           ("left", "right", "right", "right", "left", "left"))
        if any(row.metric.startswith("output_psi.") for row in r.report.rows):
            lines += ["", f"<sub>{_md_cell(_psi_note())}</sub>"]
        if r.report.tradeoffs:
            lines += ["", "**Accepted tradeoffs** (params.yaml `gate.accept`):", ""]
            for t in r.report.tradeoffs:
                used = ", ".join(_code(m) for m in t.applied_to) or "not needed"
                lines.append(f"- {_code(t.metric)} up to {_number(t.max_regression, 6)} worse "
                             f"(let through: {used}): {_md_cell(t.rationale)}")
    click.echo("\n".join(lines))


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
    listed. Exit 0 pass, 1 fail.

    \b
    Examples:
      git model gate chat
      git model gate chat --candidate chat@v1.4.0 --md > gate.md
      git model gate chat --baseline chat@v1.2.0 --rerun
    """
    from gitmodel import gating
    from gitmodel.cli.evaluation import _progress_factory

    if as_json and as_md:
        raise click.UsageError("--json and --md cannot be used together")
    results = gating.run_gate(model, baseline=baseline, candidate=candidate, evalset=evalset, rerun=rerun,
                              progress_factory=_progress_factory())
    passed = all(r.passed for r in results)
    if as_json:
        emit_json({"model": model, "baseline": results[0].baseline, "candidate": results[0].candidate,
                   "passed": passed, "results": [r.to_dict() for r in results]})
    elif as_md:
        _render_gate_md(results)
    else:
        render_gate_text(results)
    ctx.exit(0 if passed else 1)
