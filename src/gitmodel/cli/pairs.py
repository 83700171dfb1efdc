"""``git model pairs``: which eval sets each model is evaluated on; ``pairs remove`` and ``pairs prune``."""
from __future__ import annotations

import click

from gitmodel.cli.app import EVALSET_NAME, MODEL_NAME, cli, emit_json, json_option, plural


@cli.group(invoke_without_command=True)
@json_option
@click.pass_context
def pairs(ctx: click.Context, as_json: bool) -> None:
    """List the model x eval set pairs that `dvc repro` evaluates.

    The pairs are the `foreach` of the eval stage in dvc.yaml, set by
    `git model evalset add --for MODEL` and `git model add --evalset NAME`,
    and editable by hand. For each pair: its metrics file, and whether it is
    missing, stale (the weights, eval set or a setting that shapes results
    changed since) or up to date. Metrics left from a pair that is no longer
    declared are listed as orphaned: no command reads them as results, and
    `git model pairs prune` removes them.

    \b
    Example:
      git model evalset add evalsets/tickets.jsonl --for triage
      git model pairs
      git model pairs --json
    """
    if ctx.invoked_subcommand is not None:
        return
    from gitmodel import pairtable

    result = pairtable.table()
    if as_json:
        emit_json(result.to_dict())
        return
    from gitmodel.cli.render import table

    if not result.pairs:
        click.echo("No pairs: no model is evaluated on any eval set yet.")
        click.echo("  pair one: git model evalset add evalsets/<name>.jsonl --for <model>")
    else:
        rows = [[r.model, r.evalset, "yes" if r.present else "no", r.state] for r in result.pairs]
        click.echo(table(rows, ["model", "eval set", "metrics", "status"]))
        for r in result.pairs:
            if r.present and r.stale:
                click.echo(f"  {r.model} on {r.evalset}: " + "; ".join(r.reasons))
    if result.orphans:
        click.echo(f"Orphaned metrics ({plural(len(result.orphans), 'pair')} no longer declared; "
                   "never read as results):")
        for o in result.orphans:
            click.echo(f"  {o.model} on {o.evalset}: {', '.join(o.paths)}")
        click.echo("  remove them with: git model pairs prune")


@pairs.command("remove")
@click.argument("evalset", type=EVALSET_NAME)
@click.option("--for", "for_models", type=MODEL_NAME, multiple=True, metavar="MODEL",
              help="Only this model stops being evaluated on it; repeatable (default: every model).")
@click.option("--force", is_flag=True,
              help="Unpair even when a model's stage holder was released with results on it (its gate compares on them).")
@json_option
def pairs_remove(evalset, for_models, force, as_json) -> None:
    """Stop evaluating models on an eval set (the eval set stays tracked).

    Refused when a model's stage holder (prod, canary, ...) was released with
    results on the eval set: the gate compares on them, and dropping the pair
    would stop it silently. The metrics already there stay, orphaned, until
    `git model pairs prune`.

    \b
    Example:
      git model pairs remove smoke --for summariser
    """
    from gitmodel import pairtable

    result = pairtable.remove(evalset, for_models, force)
    if as_json:
        emit_json(result.to_dict())
        return
    click.echo(f"'{evalset}' is no longer evaluated on: {', '.join(result.removed)}")
    for path in result.orphaned:
        click.echo(f"  orphaned (kept until `git model pairs prune`): {path}")
    click.echo(f"Staged: {' '.join(result.staged)}. Next: git commit")


@pairs.command("prune")
@json_option
def pairs_prune(as_json) -> None:
    """Remove the orphaned metrics: those of pairs dvc.yaml no longer declares.

    Runs `git rm` (staged, not committed), so they stay in history. A file git
    does not hold, or holds with other bytes, is refused and named: nothing is
    removed then.

    \b
    Example:
      git model pairs prune && git commit -m "drop the metrics of removed pairs"
    """
    from gitmodel import pairtable

    result = pairtable.prune()
    if as_json:
        emit_json(result.to_dict())
        return
    if not result.removed:
        click.echo("No orphaned metrics: nothing to do.")
        return
    for path in result.removed:
        click.echo(f"  - {path}")
    click.echo("Staged with git rm. Next: git commit")
