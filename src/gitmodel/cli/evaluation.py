"""Commands that run models: eval, verify."""
from __future__ import annotations

import sys

import click

from gitmodel.cli.app import EVALSET_NAME, MODEL_NAME, cli, emit_json, json_option, plural, wait_option

def _progress_factory():
    """A tqdm bar on stderr when it is a terminal; nothing in CI or when piped."""
    import os

    if not sys.stderr.isatty() or os.environ.get("CI"):
        return None

    def factory(total: int, what: str):
        from tqdm import tqdm

        bar = tqdm(total=total, desc=what, unit="ex", file=sys.stderr, leave=False)

        def update(n: int = 1) -> None:
            bar.update(n)
            if bar.n >= total:
                bar.close()
        return update
    return factory


def _headline(doc: dict) -> str:
    m = doc["metrics"]
    parts = [f"n={m.get('n', 0)}"]
    if "accuracy" in m:
        parts.append(f"accuracy={m['accuracy']:.4f}")
    if "label_psi" in m:
        parts.append(f"label_psi={m['label_psi']:.4f}")
    if "ties" in m and m["ties"]:
        parts.append(f"ties={m['ties']}")
    if "output_tokens" in m:
        parts.append(f"output_tokens.mean={m['output_tokens']['mean']:.1f}")
    if "latency_ms" in m:
        parts.append(f"latency p50={m['latency_ms']['p50']:.2f} ms")
    return "  ".join(parts)


def runner_options(f):
    f = click.option("--entry", metavar="MODULE:FUNCTION",
                     help="For --runner python: the function taking a list of inputs, e.g. mypkg.fraud:predict.")(f)
    f = click.option("--url", help="For --runner openai: the endpoint's base URL, e.g. http://127.0.0.1:8080/v1.")(f)
    f = click.option("--runner", type=click.Choice(["llama", "openai", "python"]),
                     help="How to run the model (default: eval.runner in params.yaml, normally llama).")(f)
    return f


@cli.command("eval")
@click.argument("model", type=MODEL_NAME)
@click.option("--evalset", "-e", type=EVALSET_NAME, required=True, help="Eval set name (evalsets/<name>.jsonl).")
@runner_options
@click.option("--force", is_flag=True, help="Re-run even when the stored result is for the same inputs.")
@wait_option
@json_option
def eval_cmd(model, evalset, runner, url, entry, force, wait, as_json) -> None:
    """Evaluate a model on an eval set into metrics/<model>/<evalset>.json.

    Classification examples (with labels) are scored by each label's
    log-probability after the input; others are generated at temperature 0.
    The summary JSON is schema-checked and records the model and eval set
    md5s, the eval params and the runner; outputs.jsonl holds one line per
    example and is byte-identical across runs of the same inputs. When the
    stored result already has the same inputs, eval returns at once (--force
    re-runs). `dvc repro` drives it through the eval matrix stage.

    \b
    Examples:
      git model eval chat --evalset support
      git model eval fraud --evalset tx --runner python --entry mypkg.fraud:predict
      git model eval chat --evalset support --runner openai --url http://127.0.0.1:8080/v1
    """
    from gitmodel import evaluate

    def on_wait(holder: str) -> None:
        click.echo(f"Waiting for the repository lock held by {holder} ...", err=True)

    result = evaluate.run_eval(model, evalset, runner=runner, url=url, entry=entry, force=force, wait=wait,
                               progress_factory=_progress_factory(), on_wait=on_wait)
    for warning in result.warnings:
        click.echo(f"Warning: {warning}", err=True)
    if as_json:
        emit_json({"model": result.model, "evalset": result.evalset, "cached": result.cached,
                    "metrics_path": result.metrics_path, "outputs_path": result.outputs_path,
                    "seconds": round(result.seconds, 3), "warnings": result.warnings, **result.doc})
        return
    if result.cached:
        click.echo(f"Up to date: {result.metrics_path} already holds this model, eval set, params and runner "
                   "(--force to re-run)")
    else:
        click.echo(f"Evaluated {result.model} on {result.evalset} in {result.seconds:.2f} s "
                   f"-> {result.metrics_path}, {result.outputs_path}")
    click.echo("  " + _headline(result.doc))


@cli.command()
@click.argument("model", type=MODEL_NAME)
@click.option("--evalset", "-e", type=EVALSET_NAME, help="Verify this eval set only (default: every stored result of the model).")
@click.option("--rev", help="Verify the result stored at this git revision (default: the workspace).")
@json_option
@click.pass_context
def verify(ctx, model, evalset, rev, as_json) -> None:
    """Re-run a stored eval and prove its outputs are reproduced byte for byte.

    The checkpoint and eval set of that revision are taken by md5 from the
    local DVC cache (the workspace is never touched) and run with the params
    recorded in the stored metrics file. Exit 0 when every outputs file is
    reproduced exactly, 1 otherwise, listing the differing example ids.

    \b
    Examples:
      git model verify chat
      git model verify chat --evalset support --rev chat@v1.2.0
    """
    from gitmodel import verify as verify_core

    reports = verify_core.verify(model, evalset, rev)
    ok = all(r.identical for r in reports)
    if as_json:
        emit_json([{"model": r.model, "evalset": r.evalset, "rev": r.rev, "n": r.n, "identical": r.identical,
                     "problem": r.problem,
                     "differences": [vars(d) for d in r.differences]} for r in reports])
    else:
        for r in reports:
            where = f"{r.model} on {r.evalset} at {r.rev}"
            if r.identical:
                click.echo(f"Reproduced: {where}: {'' if r.n == 1 else 'all '}{plural(r.n, 'output')} identical, "
                           "byte for byte")
            elif r.problem:
                click.echo(f"NOT reproducible: {where}: {r.problem}")
            else:
                click.echo(f"MISMATCH: {where}: {len(r.differences)} of {plural(r.n, 'output')} "
                           f"{'differs' if len(r.differences) == 1 else 'differ'}")
                for d in r.differences[:verify_core.SHOWN_DIFFERENCES]:
                    click.echo(f"  {d.id}")
                    click.echo(f"    - stored:     {d.stored}")
                    click.echo(f"    + reproduced: {d.reproduced}")
                if len(r.differences) > verify_core.SHOWN_DIFFERENCES:
                    rest = ", ".join(d.id for d in r.differences[verify_core.SHOWN_DIFFERENCES:])
                    click.echo(f"  ... and {len(r.differences) - verify_core.SHOWN_DIFFERENCES} more: {rest}")
    ctx.exit(0 if ok else 1)
