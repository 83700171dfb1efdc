"""``git model diff`` at the command line: the text table, the pull-request comment (Markdown, cut to
fit) and the JSON of ``dvc metrics diff``. Rendering only: the core is :func:`diffing.diff`."""
from __future__ import annotations

import click

from gitmodel.cli.app import EVALSET_NAME, MODEL_NAME, cli, emit_json, json_option, plural
from gitmodel.cli.render import code, md_cell, md_table, number, signed, table, value

MD_MAX_EXAMPLES = 50                      # per list in a comment: a PR comment holds 65,536 characters


def _where(f) -> str:
    return f"{f.model} on {f.evalset}"


def _metric_rows(files, show_all: bool, precision: int, md: bool = False) -> list[list[str]]:
    rows = []
    for f in files:
        for r in f.rows if show_all else f.changed_rows:
            verdict = "" if r.verdict == "same" else r.verdict
            if md:
                verdict = {"better": "🟢 better", "worse": "🔴 worse"}.get(verdict, verdict)
                name = code(r.key)
                rows.append([name, value(r.old, precision), value(r.new, precision), signed(r.change, precision),
                             verdict])
            else:
                rows.append([f.path, r.key, value(r.old, precision), value(r.new, precision),
                             signed(r.change, precision), verdict])
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
    old, new = (code(result.old.label), code(result.new.label)) if md else (result.old.label, result.new.label)
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


def _review_side(side) -> str:
    return f"{side.version}, n {side.n}" if side.reviewed else "not reviewed"


def _review_value(row_value, side, precision: int) -> str:
    return value(row_value, precision) if side.reviewed else "not reviewed"


def _review_rows(review, rows, precision: int, md: bool = False) -> list[list[str]]:
    out = []
    for r in rows:
        verdict = "" if r.verdict in (None, "same") else r.verdict
        if md:
            verdict = {"better": "🟢 better", "worse": "🔴 worse"}.get(verdict, verdict)
        old = _review_value(r.old, review.old, precision) + (f" (n {r.old_n})" if r.category and r.old_n else "")
        new = _review_value(r.new, review.new, precision) + (f" (n {r.new_n})" if r.category and r.new_n else "")
        name = r.criterion if r.category is None else f"{r.category}: {r.criterion}"
        out.append([code(name) if md else name, old, new, signed(r.change, precision), verdict])
    return out


def _review_notes(result, review) -> list[str]:
    return [f"  {label}: {side.note}" for label, side in ((result.old.label, review.old), (result.new.label, review.new))
            if not side.reviewed and side.note]


def _review_text(result, precision: int, examples: bool) -> list[str]:
    lines = []
    for review in result.reviews:
        lines += ["", f"Human review of {review.model} ({review.path}, higher is better): "
                      f"{result.old.label} {_review_side(review.old)} · {result.new.label} {_review_side(review.new)}"]
        lines += _review_notes(result, review)
        headers = ["Criterion", result.old.label, result.new.label, "Change", "Verdict"]
        align = ("left", "right", "right", "right", "left")
        if review.rows:
            lines.append(table(_review_rows(review, review.rows, precision), headers, align))
        if examples and review.categories:
            lines += ["By category:", table(_review_rows(review, review.categories, precision), headers, align)]
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
    for line in _review_text(result, precision, examples):
        click.echo(line)
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
    conf = f" ({number(conf, min(precision, 2))})" if isinstance(conf, (int, float)) else ""
    return f"{mark}{md_cell(answer)}{conf}"


def _md_examples(result, f, precision: int, cap: int) -> list[str]:
    """The flipped examples of one result: at most ``cap`` rows per list, the rest counted."""
    b = f.behaviour
    old, new = result.old.label, result.new.label
    flips = [f"{len(b['wrong_to_correct'])} wrong → correct", f"{len(b['correct_to_wrong'])} correct → wrong",
             f"{len(b['label_changed'])} label changes", f"{len(b['generation_changed'])} changed generations"]
    lines = ["", f"<details><summary>Examples of {md_cell(_where(f))}: {', '.join(flips)}</summary>", ""]
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
        rows = [[code(i), md_cell(b["examples"][i].get("input", "")),
                 md_cell(b["examples"][i].get("expected", "")), _shown(b["examples"][i]["old"], precision),
                 _shown(b["examples"][i]["new"], precision)] for i in ids[:cap]]
        if rows:
            lines += md_table(rows, ["id", "input", "expected", code(old), code(new)],
                               ("left", "left", "left", "left", "left"))
        if len(ids) > cap:
            lines += ["", f"… and {len(ids) - cap} more ({_FULL_REPORT})"]
        lines.append("")
    for key, name in (("only_old", f"Only at {code(old)}"), ("only_new", f"Only at {code(new)}")):
        if b[key]:
            shown = ", ".join(code(i) for i in b[key][:cap])
            more = f" … and {len(b[key]) - cap} more" if len(b[key]) > cap else ""
            lines += [f"**{name} ({len(b[key])})**: {shown}{more}", ""]
    psi_rows = []
    for key, name in (("output_tokens", "output length"), ("confidence", "confidence"), ("label", "labels")):
        entry = b["psi"].get(key)
        value = "n/a" if entry is None else ("-" if entry["psi"] is None else f"{entry['psi']:.4f}")
        psi_rows.append([name, value, entry["band"] if entry else ""])
    from gitmodel.drift import SMOOTHING_TEXT

    lines += [f"PSI of the distributions, {code(old)} → {code(new)} (0.1 moderate, 0.2 significant; "
              f"{SMOOTHING_TEXT}):", ""]
    lines += md_table(psi_rows, ["distribution", "PSI", "band"], ("left", "right", "left"))
    lines += ["", "</details>"]
    return lines


def _md_verdict(result) -> list[str]:
    regressions = [(f, r) for f in result.files if f.gate for r in f.gate.failures]
    accepted = [(f, r) for f in result.files if f.gate for r in f.gate.accepted]
    within = [(f, r) for f in result.files if f.gate for r in f.gate.within_tolerance]
    several = len(result.files) > 1

    def name(f, r) -> str:
        return code(f"{f.model}/{f.evalset}: {r.metric}" if several else r.metric)

    # the human review's criteria, judged by the gate's rule for it
    reviewed = [(code(f"{v.model}: {r.metric}" if len(result.reviews) > 1 else r.metric), r)
                for v in result.reviews if v.gate for r in v.gate.rows]
    failed = [name(f, r) for f, r in regressions] + [n for n, r in reviewed if r.verdict == "fail"]
    lines = []
    if failed:
        lines.append(f"❌ **{len(failed)} regression{'s' if len(failed) != 1 else ''}** beyond the gate's "
                     "tolerances: " + ", ".join(failed))
    for f in result.stale:
        for reason in f.stale.values():
            lines.append(f"⚠️ **STALE METRICS** ({md_cell(_where(f))}): {md_cell(reason, 1000)}. These numbers do not "
                         "describe the checkpoint: re-evaluate and commit before trusting this diff.")
    for f in result.not_comparable:
        lines.append(f"⚠️ **NOT COMPARABLE** ({md_cell(_where(f))}): {md_cell(f.reason, 1000)}. The numbers below "
                     "come from different inputs: a change is not the checkpoint's doing.")
    if not failed and not result.not_comparable and not result.stale:
        if within:
            lines.append("☑️ **Within tolerance**: no metric is worse than the gate's tolerances allow, but "
                         f"{len(within)} {'is' if len(within) == 1 else 'are'} worse than before: "
                         + ", ".join(name(f, r) for f, r in within) + " (params.yaml `gate:`)")
        else:
            lines.append("✅ **No regressions**: no gated metric is worse (params.yaml `gate:`)")
    for f, r in accepted:
        lines.append(f"☑️ Accepted tradeoff {name(f, r)}: {md_cell(r.tradeoff.rationale)}")
    for n, r in reviewed:
        if r.verdict == "accepted":
            lines.append(f"☑️ Accepted tradeoff {n}: {md_cell(r.tradeoff.rationale)}")
    return lines


# GitHub refuses a comment over 65,536 characters; the budget keeps room for what a workflow adds.
MD_LIMIT = 65_536
MD_BUDGET = 60_000
_FULL_REPORT = ("the full report: `git model diff --examples`; the model-diff workflow uploads it as the "
                "`model-diff-report` artifact")


def _diff_md(result, show_all: bool, precision: int, cap: int) -> list[str]:
    old, new = result.old.label, result.new.label
    from gitmodel.ci import COMMENT_MARKER

    lines = [COMMENT_MARKER, f"### git-model diff: {code(old)} → {code(new)}", ""]
    if not result.files:
        return lines + [f"No stored metrics at {code(old)} or {code(new)}."]
    lines += _md_verdict(result)
    for f in result.files:
        lines += ["", f"#### {md_cell(_where(f))} — {code(f.path)}", ""]
        one_sided = _one_sided(result, f, md=True)
        if one_sided:
            lines += [f"{one_sided[0].upper()}{one_sided[1:]}.", ""]
        rows = _metric_rows([f], show_all, precision, md=True)
        if rows:
            lines += md_table(rows, ["metric", code(old), code(new), "change", ""],
                               ("left", "right", "right", "right", "left"))
        else:
            lines.append("No metric changed.")
        if f.behaviour is not None and f.behaviour["matched"] > 0:
            lines += _md_examples(result, f, precision, cap)
    lines += _review_md(result, precision)
    if result.weights:
        from gitmodel.cli.forensics import weights_md

        for w in result.weights:
            lines += weights_md(w)
    return lines + ["", f"<sub>{code(f'git model diff {result.old.text} {result.new.text} --md')}</sub>"]


def _review_md(result, precision: int) -> list[str]:
    old, new = result.old.label, result.new.label
    lines = []
    for review in result.reviews:
        lines += ["", f"#### Human review of {md_cell(review.model)} — {code(review.path)}", "",
                  f"{code(old)}: {md_cell(_review_side(review.old))} · {code(new)}: {md_cell(_review_side(review.new))}"
                  " (mean per criterion, higher is better)", ""]
        lines += [f"- {md_cell(note.strip(), 1000)}" for note in _review_notes(result, review)]
        headers = ["criterion", code(old), code(new), "change", ""]
        align = ("left", "right", "right", "right", "left")
        if review.rows:
            lines += md_table(_review_rows(review, review.rows, precision, md=True), headers, align)
        if review.categories:
            lines += ["", "<details><summary>Human review by category</summary>", ""]
            lines += md_table(_review_rows(review, review.categories, precision, md=True), headers, align)
            lines += ["", "</details>"]
    return lines


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
    # stdout keeps dvc's shape; the loud part goes to stderr (the eval set md5 and params that differ
    # are in the shape already, as changed keys)
    for line in _stale_lines(result, explain=False) + _not_comparable_lines(result, explain=False):
        click.echo(f"Warning: {line}", err=True)
    emit_json(result.to_dict(examples=examples))   # without --examples: exactly `dvc metrics diff --json`


@cli.command("diff")
@click.argument("a", required=False, metavar="[A]")
@click.argument("b", required=False, metavar="[B]")
@click.option("--model", "-m", type=MODEL_NAME,
              help="Only this model's results (implied by a registry reference such as chat@v1.2.0).")
@click.option("--evalset", "-e", type=EVALSET_NAME, help="Only results on this eval set.")
@json_option
@click.option("--md", "as_md", is_flag=True, help="Print a GitHub-flavoured Markdown pull-request comment.")
@click.option("--all", "show_all", is_flag=True, help="Show unchanged metrics too (as `dvc metrics diff --all`).")
@click.option("--examples", is_flag=True,
              help="Add the behavioural diff: which examples flipped, label and generation changes, PSI.")
@click.option("--weights", is_flag=True,
              help="Add weights-diff's summary of the two checkpoints (tensors, quantisation, chat template).")
@click.option("--precision", type=click.IntRange(0, 15), default=5, show_default=True,
              help="Round numbers to this many decimals in the table and the comment (not in --json).")
def diff_cmd(a, b, model, evalset, as_json, as_md, show_all, examples, weights, precision) -> None:
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
    GitHub's 65,536 characters (the full report: --examples). --weights adds
    weights-diff's summary of each model's two checkpoints (in --md, a
    collapsible block; in --json, under "weights" beside "metrics").

    A model with a human review (metrics/MODEL/review.json, `git model
    review import`) gets its mean per rubric criterion at A and at B, each
    the review of the checkpoint that revision tracks ("not reviewed" when
    nobody scored its outputs), per category with --examples and --md; in
    --json, under the review file's path in dvc's shape (mean.<criterion>, n).

    \b
    Examples:
      git model diff
      git model diff chat@v1.2.0 chat@v1.3.0
      git model diff chat#prod --examples
      git model diff origin/main HEAD --md > comment.md
      git model diff chat@v1.1.0 chat@v1.2.0 --weights
    """
    from gitmodel import diffing

    if as_json and as_md:
        raise click.UsageError("--json and --md cannot be used together")
    result = diffing.diff(a, b, model=model, evalset=evalset, all=show_all, examples=examples or as_md,
                          verdict=as_md, weights=weights)
    if as_json:
        _diff_json(result, examples)
    elif as_md:
        _render_diff_md(result, show_all, precision)
    else:
        _render_diff_text(result, show_all, precision, examples)
        _render_weights_text(result)


def _render_weights_text(result) -> None:
    from gitmodel.cli.forensics import weights_summary

    for w in result.weights or []:
        click.echo("")
        if w.diff is None:
            click.echo(f"Weights of {w.model}: {w.note}")
            continue
        click.echo(f"Weights of {w.model} ({result.old.label} -> {result.new.label}):")
        for line in weights_summary(w.diff):
            click.echo(f"  {line}")
