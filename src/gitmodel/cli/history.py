"""Commands over releases and history: release, log, show, plot."""
from __future__ import annotations

import click

from gitmodel.cli.app import EVALSET_NAME, MODEL_NAME, VERSION, cli, emit_json, json_option, wait_option
from gitmodel.cli.render import fixed, lineage, table
from gitmodel.metricspecs import iter_leaves


def _local_date(timestamp: int) -> str:
    import time

    return time.strftime("%Y-%m-%d %H:%M", time.localtime(timestamp))


@cli.command()
@click.argument("model", type=MODEL_NAME)
@click.argument("version", type=VERSION)
@click.option("--message", "-m", help="What changed in this release; goes into the tag message after GTO's line.")
@click.option("--allow-lower", is_flag=True,
              help="Release a version below the highest existing one (e.g. a fix on an older line).")
@click.option("--accept-unverified", metavar="RATIONALE",
              help="Release although some metrics are unverified (not tied to the tracked md5); "
                   "the rationale is recorded in the tag message.")
@click.option("--push", "push", is_flag=True,
              help="Put the weights on the default DVC remote before tagging, then push the tag to origin.")
@wait_option
@json_option
def release(model, version, message, allow_lower, accept_unverified, push, wait, as_json) -> None:
    """Release the committed MODEL as VERSION: an annotated tag MODEL@vX.Y.Z on HEAD.

    VERSION is SemVer (1.2.0 or v1.2.0, pre-releases like v1.3.0-rc.1 too)
    and must be above every earlier release of the model (unless
    --allow-lower). Refused, with the reason and no tag, when the model, its
    dvc.lock entry or its metrics have uncommitted changes, when the
    workspace weights differ from the committed ones, when metrics are
    missing or stale (measured on another model md5 or eval set), when
    they are unverified (produced by a server that did not prove it served
    the tracked md5: run `git model verify`, commit, or pass
    --accept-unverified "why"), or when the tag exists. Checks and tag hold
    the repository lock (--wait waits for it). The tag is GTO's: its message starts with `Registering
    artifact MODEL version vX.Y.Z`, then your message, then a JSON record of
    the model md5, lineage and headline metrics per eval set, so `gto show`
    and `dvc artifacts get` read it. --push puts the weights and eval sets on
    the default DVC remote first (no tag when they cannot get there), then
    pushes the tag to origin; otherwise `git model push` shares it later.

    \b
    Example:
      git model release chat v1.3.0 -m "more support data"
      git model release chat 1.2.1 --allow-lower -m "hotfix on the 1.2 line"
      git model release chat v1.4.0 --push
    """
    from gitmodel import releasing, sharing
    from gitmodel.cli.sharing import progress_printer, share_hint

    def on_wait(holder: str) -> None:
        click.echo(f"Waiting for the repository lock held by {holder} ...", err=True)

    options = dict(message=message, allow_lower=allow_lower, accept_unverified=accept_unverified, wait=wait,
                   on_wait=on_wait)
    if push:
        shared = sharing.release_and_push(model, version, progress=None if as_json else progress_printer("Pushing"),
                                          **options)
        result = shared.release
    else:
        shared, result = None, releasing.release(model, version, **options)
    if as_json:
        emit_json((shared or result).to_dict())
        return
    record = result.record
    click.echo(f"Released {result.tag} on {result.commit[:7]} ({record['path']} md5 {record['md5']})")
    for evalset, entry in record["evalsets"].items():
        shown = "  ".join(f"{k} {fixed(v)}" for k, v in entry["metrics"].items())
        click.echo(f"  {evalset}: {shown}")
    if shared is not None:
        moved = len(shared.pushed)
        click.echo(f"Pushed {result.tag} to git remote '{shared.git_remote}' and {moved} object(s) to DVC remote "
                   f"'{shared.remote}' ({len(shared.present)} already there); verified on the remote.")
        return
    click.echo(share_hint(model, result.tag))


def _metric_columns(entries) -> list[tuple[str, str]]:
    """(eval set, metric) columns for the log table: every headline metric but n."""
    columns: list[tuple[str, str]] = []
    for entry in entries:
        for evalset, values in entry.metrics.items():
            for key in values:
                if key != "n" and (evalset, key) not in columns:
                    columns.append((evalset, key))
    return sorted(columns)


@cli.command("log")
@click.argument("model", type=MODEL_NAME, required=False)
@click.option("-n", "--max-count", "limit", type=click.IntRange(min=1), metavar="N",
              help="Show only the N newest versions (of each model).")
@json_option
def log_cmd(model, limit, as_json) -> None:
    """List releases, newest version first (SemVer order), with stages and headline metrics.

    For each release: its date, commit, the stages it holds now (prod,
    canary...) and its headline metrics per eval set, read from the metrics
    committed at the release. Deregistered releases (GTO's `!` tags) and
    deprecated models (`@deprecated`) are marked. Without MODEL, every
    released model.

    \b
    Example:
      git model log chat
      git model log chat -n 5 --json
    """
    from gitmodel import history, project

    logs = history.log(project.open_root(), model, limit)
    if as_json:
        emit_json([entry.to_dict() for model_log in logs for entry in model_log.entries])
        return
    if not any(model_log.total for model_log in logs):
        name = model or "MODEL"
        click.echo(f"No releases{f' of {model}' if model else ''} yet. "
                   f"Release one with `git model release {name} v1.0.0`.")
        return
    for i, model_log in enumerate(logs):
        if i:
            click.echo("")
        count = f"{model_log.total} release{'s' if model_log.total != 1 else ''}"
        shown = f", showing the newest {len(model_log.entries)}" if len(model_log.entries) < model_log.total else ""
        click.echo(f"{model_log.model}{' (deprecated)' if model_log.deprecated else ''}: {count}{shown}")
        columns = _metric_columns(model_log.entries)
        headers = ["VERSION", "DATE", "COMMIT", "STAGES"] + [f"{e}:{k}" for e, k in columns]
        rows = []
        any_note = any(e.release.deregistered for e in model_log.entries)
        for entry in model_log.entries:
            r = entry.release
            row = [str(r.version), _local_date(r.time), r.commit[:7], ",".join(entry.stages) or "-"]
            row += [fixed(entry.metrics.get(e, {}).get(k, "-")) for e, k in columns]
            if any_note:
                row.append("deregistered" if r.deregistered else "")
            rows.append(row)
        # plain columns, as wide as their widest cell: a version is never cut short
        click.echo(table(rows, headers + (["NOTE"] if any_note else []), fmt="plain"))


def _render_model(state) -> list[str]:
    lines = []
    title = state.model
    if state.release is not None:
        title += f"  {state.release.tag}" + (" (deregistered)" if state.release.deregistered else "")
    if state.stages:
        title += f"  stages: {', '.join(state.stages)}"
    lines.append(title)
    if state.release is not None:
        lines.append(f"  released:  {_local_date(state.release.time)} by {state.release.tagger or '?'}")
        for line in state.message.splitlines():
            lines.append(f"    {line}")
    if state.tracked_by:
        size = f", {state.size:,} bytes" if isinstance(state.size, int) else ""
        lines.append(f"  model:     {state.path} md5 {state.md5}{size} (tracked by {state.tracked_by})")
    else:
        lines.append(f"  model:     {state.path} is not tracked at this revision")
    lines += lineage(state.gguf, state.lineage)
    if not state.results:
        lines.append("  metrics:   none at this revision")
    for result in state.results:
        doc = result.doc
        evalset_md5 = (doc.get("evalset") or {}).get("md5")
        stale = state.stale.get(result.evalset)
        runner = (doc.get("runner") or {}).get("name", "?")
        lines.append(f"  metrics on {result.evalset} ({result.path}; eval set md5 {evalset_md5}, runner {runner})"
                     + (f"  STALE: {'; '.join(map(str, stale))}" if stale else ""))
        leaves = [[key, fixed(value)] for key, value in iter_leaves(doc["metrics"])]
        lines += ["    " + line for line in table(leaves, None, fmt="plain").splitlines()]
    return lines


@cli.command()
@click.argument("ref")
@json_option
def show(ref, as_json) -> None:
    """Show metrics (every eval set) and lineage at a revision.

    REF is a release (chat@v1.2.0, chat@latest), a stage (chat#prod), any git
    revision (HEAD~2, main, a sha) or `workspace`. A release or stage shows
    its model; a git revision shows every model it holds. Everything is read
    from git objects: nothing is checked out.

    \b
    Example:
      git model show chat@v1.2.0
      git model show chat#prod --json
      git model show HEAD~1
    """
    from gitmodel import history, project

    shown = history.show(project.open_root(), ref)
    if as_json:
        emit_json(shown.to_dict())
        return
    rev = shown.revision
    if rev.is_workspace:
        where = "workspace"
    elif rev.release is not None and rev.text != rev.release.tag:
        where = f"{rev.text} = {rev.release.tag} (commit {rev.commit[:7]})"
    else:
        where = f"{rev.text} (commit {rev.commit[:7]})"
    click.echo(where)
    if not shown.models:
        click.echo("  no models at this revision")
    for state in shown.models:
        click.echo("")
        for line in _render_model(state):
            click.echo(line)


@cli.command()
@click.argument("model", type=MODEL_NAME)
@click.option("--metric", "-m", "metric_keys", multiple=True, metavar="KEY",
              help="A metric to plot, dotted for nested ones (labels.positive.fpr); repeatable. Default: accuracy.")
@click.option("--evalset", "-e", "evalsets", type=EVALSET_NAME, multiple=True, metavar="NAME",
              help="Only this eval set; repeatable. Default: every eval set of the releases.")
@click.option("--output", "-o", type=click.Path(dir_okay=False, path_type=str), metavar="FILE",
              help="Where to write: .html (self-contained, interactive), .png, .svg, or .json "
                   "(the Vega-Lite spec). Default: <model>-metrics.html.")
def plot(model, metric_keys, evalsets, output) -> None:
    """Plot metrics across the releases of MODEL, in SemVer order.

    One panel per metric, one line per eval set, a point per release (x =
    version, sorted by SemVer; deregistered releases are left out). The chart
    is Vega-Lite: .html is a self-contained page (the Vega libraries are
    inlined, so it opens offline), .png and .svg are rendered without a
    browser, .json is the spec itself. Rendering needs the `plot` extra:
    pip install 'git-model[plot]'.

    \b
    Example:
      git model plot chat --metric accuracy -o history.html
      git model plot chat -m accuracy -m labels.positive.fpr -o history.png
    """
    from gitmodel import plot as plotting, project

    result = plotting.plot(project.open_root(), model, list(metric_keys) or None, list(evalsets) or None, output)
    click.echo(f"Wrote {result.path}: {', '.join(result.metrics)} across {result.releases} "
               f"release{'s' if result.releases != 1 else ''} of {model} ({result.first} .. {result.last})")
