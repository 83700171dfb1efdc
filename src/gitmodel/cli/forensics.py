"""``git model blame``, ``bisect`` and ``weights-diff`` at the command line: rendering only (the cores are
:mod:`blame`, :mod:`bisect` and :mod:`weightsdiff`). The weights summary here is also what ``diff
--weights`` and ``bisect`` print."""
from __future__ import annotations

import click

from gitmodel.cli.app import EVALSET_NAME, MODEL_NAME, cli, emit_json, json_option, plural
from gitmodel.cli.render import code, md_cell, md_table, table

TOP_DEFAULT = 10


def _num(value, digits: int = 4) -> str:
    if value is None:
        return "-"
    if value == 0:
        return "0"
    return f"{value:.{digits}g}" if abs(value) < 1e-3 or abs(value) >= 1e4 else f"{value:.{digits}f}"


def _side(side) -> str:
    c, i = side.checkpoint, side.info
    md5 = f"md5 {c.md5}, " if c.md5 else ""
    return (f"{c.label}: {md5}{i.architecture or '?'}, {i.quantization or '?'}, {plural(len(i.tensors), 'tensor')}, "
            f"{i.parameter_count:,} parameters")


def _counts(d) -> str:
    from gitmodel import weightsdiff as w

    parts = [f"{d.count(s)} {name}" for s, name in ((w.MOVED, "changed"), (w.RETYPED, "re-typed"),
                                                    (w.RESHAPED, "re-shaped"), (w.ADDED, "added"),
                                                    (w.REMOVED, "removed"), (w.BYTES, "differ by bytes"))
             if d.count(s)]
    return ", ".join(parts + [f"{d.count(w.IDENTICAL)} identical"])


def weights_summary(d) -> list[str]:
    """A few lines: what moved, the template and tokenizer, the metadata."""
    lines = []
    if not d.tensors_compared:
        lines.append(f"Tensors not compared: {d.reason}.")
    else:
        identical = "yes" if d.tensor_data_identical else "no"
        lines.append(f"Tensors: {_counts(d)} (of {len(d.tensors)}); tensor data byte-identical: {identical}")
        moved = [t for t in d.moved if t.relative_l2 is not None and t.relative_l2 > 0][:3]
        if moved:
            lines.append("  moved most: " + ", ".join(f"{t.name} (rel L2 {_num(t.relative_l2)})" for t in moved))
        blocks = [b for b in d.blocks if b.moved][:3]
        if blocks:
            lines.append("  blocks: " + ", ".join(f"{b.block} ({_num(b.relative_l2)})" for b in blocks))
    lines.append("Chat template: " + ("CHANGED (" + ", ".join(m.key for m in d.chat_template) + ")"
                                      if d.chat_template else "unchanged"))
    lines.append("Tokenizer: " + ("CHANGED (" + ", ".join(m.key for m in d.tokenizer) + ")"
                                  if d.tokenizer else "unchanged"))
    others = [m for m in d.metadata if m.area == "metadata"]
    lines.append(f"Metadata: {plural(len(others), 'other key')} {'differs' if len(others) == 1 else 'differ'}" + (
        ": " + ", ".join(m.key for m in others[:6]) + (" …" if len(others) > 6 else "") if others else ""))
    return lines


def render_weights(d, top: int) -> list[str]:
    lines = [f"weights-diff {d.old.checkpoint.label} -> {d.new.checkpoint.label}",
             f"  a  {_side(d.old)}", f"  b  {_side(d.new)}", ""]
    lines += weights_summary(d)
    if d.metadata:
        lines += ["", "Metadata:"]
        rows = [[{"added": "+", "removed": "-", "changed": "~"}[m.change], m.key, m.area,
                 "" if m.change == "added" else _value(m.old), "" if m.change == "removed" else _value(m.new)]
                for m in d.metadata]
        lines.append(table(rows, ["", "Key", "Area", "a", "b"]))
    for m in d.metadata:
        if m.unified_diff:
            lines += ["", *m.unified_diff]
    if d.tensors_compared and d.moved:
        shown = d.moved[:top]
        lines += ["", f"Tensors that differ ({len(shown)} of {len(d.moved)}, most moved first):"]
        rows = [[t.name, t.status, _types(t), _shapes(t), _num(t.relative_l2), _num(t.cosine, 6),
                 _num(t.max_abs_diff), t.note] for t in shown]
        lines.append(table(rows, ["Tensor", "Status", "Type", "Shape", "Rel L2", "Cosine", "Max |b-a|", "Note"],
                           ("left", "left", "left", "left", "right", "right", "right", "left")))
        blocks = [b for b in d.blocks if b.moved]
        if blocks:
            lines += ["", "Blocks, most moved first:"]
            rows = [[b.block, f"{b.moved}/{b.tensors}", _num(b.relative_l2), _num(b.max_abs_diff)] for b in blocks]
            lines.append(table(rows, ["Block", "Moved", "Rel L2", "Max |b-a|"], ("left", "right", "right", "right")))
    return lines


def _value(v) -> str:
    text = repr(v) if isinstance(v, str) else str(v)
    return text if len(text) <= 60 else text[:59] + "…"


def _types(t) -> str:
    return t.old_type if t.old_type == t.new_type else f"{t.old_type or '-'} -> {t.new_type or '-'}"


def _shapes(t) -> str:
    a = "x".join(map(str, t.old_shape)) if t.old_shape else "-"
    b = "x".join(map(str, t.new_shape)) if t.new_shape else "-"
    return a if a == b else f"{a} -> {b}"


def weights_md(model_weights) -> list[str]:
    """The collapsible block of a pull-request comment (``diff --weights --md``)."""
    d = model_weights.diff
    if d is None:
        return ["", f"<details><summary>Weights of {md_cell(model_weights.model)}: "
                    f"{md_cell(model_weights.note)}</summary></details>"]
    head = "tensors not compared" if not d.tensors_compared else _counts(d)
    flags = [x for x, on in (("chat template changed", d.chat_template), ("tokenizer changed", d.tokenizer)) if on]
    lines = ["", f"<details><summary>Weights of {md_cell(model_weights.model)}: {md_cell(head)}"
                 f"{md_cell('; ' + ', '.join(flags)) if flags else ''}</summary>", ""]
    lines += [md_cell(line, 500) + "<br>" for line in weights_summary(d)]
    if d.tensors_compared and d.moved:
        rows = [[code(t.name), t.status, md_cell(_types(t)), _num(t.relative_l2), _num(t.cosine, 6),
                 _num(t.max_abs_diff)] for t in d.moved[:TOP_DEFAULT]]
        lines += [""] + md_table(rows, ["tensor", "status", "type", "rel L2", "cosine", "max abs diff"],
                                 ("left", "left", "left", "right", "right", "right"))
    for m in d.chat_template:
        lines += ["", "```diff", *m.unified_diff[:200], "```"]
    return lines + ["", "</details>"]


@cli.command("weights-diff")
@click.argument("a")
@click.argument("b")
@click.option("--model", "-m", type=MODEL_NAME,
              help="The model whose checkpoint a revision names (implied by chat@v1.2.0 or chat#prod).")
@click.option("--top", type=click.IntRange(1), default=TOP_DEFAULT, show_default=True,
              help="Show this many of the tensors that moved most.")
@json_option
def weights_diff_cmd(a, b, model, top, as_json) -> None:
    """Compare two GGUF checkpoints tensor by tensor, with their metadata.

    A and B are GGUF file paths or revisions (MODEL@vX.Y.Z, MODEL@latest,
    MODEL#STAGE, a git revision with --model, `workspace`); a revision's
    checkpoint is read from the DVC cache by its md5 (fetched from the DVC
    remote when missing), never checked out.

    Prints metadata keys added, removed and changed (the chat template as a
    unified diff, the tokenizer named), tensors added, removed, re-shaped or
    re-typed, and for the tensors of both files the relative L2 change
    ||b-a||/||a||, cosine similarity and largest absolute difference after
    dequantising, then the blocks ranked by how far they moved. Files of
    different architectures get the metadata diff only. Memory stays bounded:
    the files are read through memory maps, a slice at a time.

    \b
    Examples:
      git model weights-diff chat@v1.1.0 chat@v1.2.0
      git model weights-diff chat#prod workspace --model chat
      git model weights-diff models/a.gguf models/b.gguf --json
    """
    from gitmodel import weightsdiff

    result = weightsdiff.diff(a, b, model=model)
    if as_json:
        emit_json(result.to_dict(top=top))
        return
    for line in render_weights(result, top):
        click.echo(line)


def _short(text, limit: int = 40) -> str:
    text = "" if text is None else str(text).replace("\n", " ")
    return text if len(text) <= limit else text[:limit - 1] + "…"


def _stage_cell(row) -> str:
    past = [s for s in row.held if s not in row.stages]
    return ", ".join(row.stages + [f"({s})" for s in past])


def _marks(row) -> str:
    marks = []
    if row.correct_flipped:
        marks.append("correct -> wrong" if row.record.get("correct") is False else "wrong -> correct")
    elif row.answer_changed:
        marks.append("answer changed")
    return "; ".join(marks)


@cli.command("blame")
@click.argument("model", type=MODEL_NAME)
@click.argument("example_id", metavar="ID")
@click.option("--evalset", "-e", type=EVALSET_NAME,
              help="The eval set holding the example (needed when the model has results on several).")
@json_option
def blame_cmd(model, example_id, evalset, as_json) -> None:
    """Show one example at every release of MODEL: output, label, confidence, correct.

    The example's input and expected answer come first, then one row per
    release in SemVer order (and the workspace, when it holds results) with the
    stages the release holds (in parentheses: held before), and a mark where
    the answer changed and where correctness flipped. Everything is read from
    the outputs files committed at each release, in one pass over git objects;
    a release evaluated on another eval set says so instead of a row.

    \b
    Examples:
      git model blame chat r0142
      git model blame chat r0142 --evalset support --json
    """
    from gitmodel import blame, project

    result = blame.blame(project.open_root(), model, example_id, evalset)
    if as_json:
        emit_json(result.to_dict())
        return
    e = result.example or {}
    click.echo(f"blame {result.model} {result.id} (eval set {result.evalset})")
    if result.example is None:
        click.echo("  (the eval set the newest result used is not in the local DVC cache: input unknown)")
    else:
        click.echo(f"  input:    {_short(e.get('input'), 200)}")
        expected = e.get("expected")
        category = f"   (category {e['category']})" if e.get("category") else ""
        click.echo(f"  expected: {expected if expected is not None else '-'}{category}")
    click.echo("")
    rows = []
    for r in result.rows:
        rec = r.record
        if rec is None:
            rows.append([r.revision, _stage_cell(r), f"({r.note})", "", "", "", ""])
            continue
        conf = rec.get("confidence")
        correct = {True: "yes", False: "NO"}.get(rec.get("correct"), "-")
        rows.append([r.revision, _stage_cell(r), _short(rec.get("output")), str(rec.get("label") or "-"),
                     "-" if conf is None else f"{conf:.4f}", correct, _marks(r)])
    click.echo(table(rows, ["Release", "Stages", "Output", "Label", "Conf", "Correct", "Change"],
                     ("left", "left", "left", "left", "right", "left", "left")))
    for r in result.rows:
        if r.record is not None and r.note:
            click.echo(f"  {r.revision}: {r.note}")


def _step_line(step) -> str:
    verdict = "bad " if step.bad else "good"
    subject = f"  {_short(step.subject, 50)}" if step.subject else ""
    return f"  {verdict}  {step.commit[:12]}  md5 {step.md5[:12]}  {step.how:<9}  {step.detail}{subject}"


@cli.command("bisect")
@click.argument("model", type=MODEL_NAME)
@click.argument("example_id", metavar="[ID]", required=False)
@click.option("--metric", metavar="KEY", help="Bisect a metric (dotted key, e.g. accuracy_by_category.billing).")
@click.option("--threshold", type=float, metavar="X",
              help="With --metric: bad when worse than good's by more than X (default: the gate's tolerance).")
@click.option("--good", required=True, metavar="REV",
              help="A revision where the model was good and evaluated (a bare vX.Y.Z is a release of MODEL).")
@click.option("--bad", required=True, metavar="REV", help="A later revision, descending from --good, where it is bad.")
@click.option("--evalset", "-e", type=EVALSET_NAME, help="The eval set (needed when there are several).")
@json_option
def bisect_cmd(model, example_id, metric, threshold, good, bad, evalset, as_json) -> None:
    """Find the first checkpoint of MODEL between --good and --bad that is bad.

    The candidates are the first-parent commits after --good up to --bad that
    change the model's tracked md5 (releases and plain commits alike); a binary
    search judges as few as it must. For an example ID, a checkpoint is bad
    when its answer is wrong (or differs from good's, for an example without
    an expected answer); for --metric, when the metric is worse than good's
    beyond the gate's tolerance (params.yaml gate:) or --threshold. A commit
    whose stored outputs were computed on its own checkpoint is read; any other
    is evaluated in-process from the DVC cache by md5 (fetched from the DVC
    remote when missing), on the example alone or on the eval set, with the
    params recorded at --good. Nothing is checked out or written.

    Prints each step, then the first bad commit with its lineage changes and
    weights-diff summary against the checkpoint before it.

    \b
    Examples:
      git model bisect chat r0142 --good chat@v1.1.0 --bad chat@v1.6.0
      git model bisect chat --metric accuracy_by_category.billing --good v1.1.0 --bad HEAD
    """
    from gitmodel import bisect, project

    if (example_id is None) == (metric is None):
        raise click.UsageError("give an example ID or --metric KEY (one of the two)")
    if threshold is not None and metric is None:
        raise click.UsageError("--threshold goes with --metric")
    on_step = None if as_json else (lambda step: click.echo(_step_line(step)))
    if not as_json:
        click.echo(f"bisect {model}: {example_id or metric}, good {good}, bad {bad}")
    result = bisect.bisect(project.open_root(), model, good, bad, example_id=example_id, metric=metric,
                           threshold=threshold, evalset=evalset, on_step=on_step)
    if as_json:
        emit_json(result.to_dict())
        return
    click.echo(f"{plural(len(result.candidates), 'checkpoint change')} between good and bad; "
               f"{plural(result.evaluations, 'evaluation')} (at most {result.max_evaluations} for the search, "
               "plus the bad end when it has no stored outputs)")
    first = result.first_bad
    subject = next((s.subject for s in result.steps if s.commit == first), "")
    click.echo("")
    click.echo(f"First bad commit: {first}  {subject}")
    click.echo(f"  checkpoint before it: {result.before}")
    if result.lineage:
        click.echo("  lineage changes:")
        for change in result.lineage:
            click.echo(f"    {change['key']}: {change['old']} -> {change['new']}")
    else:
        click.echo("  lineage: unchanged")
    w = result.weights
    if w is not None:
        if w.diff is None:
            click.echo(f"  weights: {w.note}")
        else:
            for line in weights_summary(w.diff):
                click.echo(f"  {line}")
