"""Commands that run models: eval, verify."""
from __future__ import annotations

import json
import sys

import click

from gitmodel.cli.app import EVALSET_NAME, MODEL_NAME, cli, emit_json, json_option, plural, wait_option

def progress_factory():
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
    # the stored values, as stored (6 decimals at most): a rounded 0.9 for a stored 0.87 misleads
    from gitmodel.history import headline

    return "  ".join(f"{key}={value}" for key, value in headline(doc["metrics"]).items())


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
    re-runs). `dvc repro` drives it through the eval stage, once per declared
    pair (`git model pairs`); a pair dvc.yaml does not declare is refused.

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
                               progress_factory=progress_factory(), on_wait=on_wait)
    for warning in result.warnings:
        click.echo(f"Warning: {warning}", err=True)
    if as_json:
        emit_json(result.to_dict())
        return
    if result.cached:
        click.echo(f"Up to date: {result.metrics_path} already holds this model, eval set, params and runner "
                   "(--force to re-run)")
    else:
        click.echo(f"Evaluated {result.model} on {result.evalset} in {result.seconds:.2f} s "
                   f"-> {result.metrics_path}, {result.outputs_path}")
    click.echo("  " + _headline(result.doc))
    runner = result.doc["runner"]
    if runner.get("outside_top_k"):
        click.echo(f"  top_logprobs: {runner['outside_top_k']} examples with a label outside the top "
                   f"{runner.get('top_logprobs')}, {runner.get('unanswered', 0)} of them with none within "
                   "(no answer: counted wrong)")
    from gitmodel import provenance

    if provenance.is_unverified(result.doc):
        click.echo(f"  UNVERIFIED: {provenance.verification_of(result.doc)['detail']}; release and promote "
                   "refuse it until `git model verify` reproduces it (or --accept-unverified)")


@cli.command()
@click.argument("model", type=MODEL_NAME)
@click.option("--evalset", "-e", type=EVALSET_NAME,
              help="Verify this eval set only (default: every stored result of the model).")
@click.option("--rev", metavar="REV",
              help="Verify the result stored at this revision: MODEL@vX.Y.Z, MODEL@latest, MODEL#stage or any git "
                   "revision (default: the workspace).")
@json_option
@click.pass_context
def verify(ctx, model, evalset, rev, as_json) -> None:
    """Re-run a stored eval and prove its outputs and summary are reproduced.

    The checkpoint and eval set of that revision are taken by md5 from the
    local DVC cache and run in-process with llama.cpp with the params
    recorded in the stored metrics file (printed). The outputs must be
    reproduced byte for byte (a result of the openai runner: the same
    answers, scores within 1e-3), and the summary's metrics, recomputed from
    them, must equal the stored ones (timings aside). Exit 0 when all is
    reproduced, 1 otherwise, naming the differing example ids and metrics.
    Reproducing an unverified workspace result records the verification in
    its metrics file (commit it to release); nothing else is written.

    \b
    Examples:
      git model verify chat
      git model verify chat --evalset support --rev chat@v1.2.0
      git model verify chat --rev chat#prod
    """
    from gitmodel import verify as verify_core

    reports = verify_core.verify(model, evalset, rev)
    ok = all(r.identical for r in reports)
    if as_json:
        emit_json([r.to_dict() for r in reports])
    else:
        for r in reports:
            _render_verify(r, verify_core.SHOWN_DIFFERENCES)
    ctx.exit(0 if ok else 1)


def _shown_line(line: str | None) -> str:
    return line if line is not None else "(no line for this id)"


def _render_verify(r, shown: int) -> None:
    where = f"{r.model} on {r.evalset} at {r.rev}"
    if r.identical:
        how = "byte for byte" if not r.tolerance else \
            f"answers equal, scores within {r.tolerance:g} of the {r.runner} runner's"
        click.echo(f"Reproduced: {where}: {'' if r.n == 1 else 'all '}{plural(r.n, 'output')} identical, {how}; "
                   "summary metrics recomputed equal")
    elif r.problem:
        click.echo(f"NOT reproducible: {where}: {r.problem}")
    else:
        parts = []
        if r.differences:
            parts.append(f"{len(r.differences)} of {plural(r.n, 'output')} {'differs' if len(r.differences) == 1 else 'differ'}")
        if r.metric_differences:
            keys = ", ".join(d.key for d in r.metric_differences)
            parts.append(f"stored summary differs from the one recomputed from the outputs on {keys}")
        click.echo(f"MISMATCH: {where}: {'; '.join(parts)}")
        for d in r.metric_differences:
            stored = "(missing)" if d.stored is None else repr(d.stored)
            again = "(missing)" if d.reproduced is None else repr(d.reproduced)
            click.echo(f"  {d.key}: stored {stored}, recomputed {again}")
        for d in r.differences[:shown]:
            click.echo(f"  {d.id}")
            click.echo(f"    - stored:     {_shown_line(d.stored)}")
            click.echo(f"    + reproduced: {_shown_line(d.reproduced)}")
        if len(r.differences) > shown:
            rest = ", ".join(d.id for d in r.differences[shown:])
            click.echo(f"  ... and {len(r.differences) - shown} more: {rest}")
    if r.other_build:
        differ = f"{plural(len(r.differences), 'output')} differ" if r.differences else "no output differs"
        click.echo(f"  reproduced on another build: llama.cpp {r.other_build[1]} (stored with "
                   f"{r.other_build[0]}): {differ}")
    if r.params:
        click.echo("  params: " + ", ".join(f"{k}={json.dumps(v, ensure_ascii=False)}" for k, v in r.params.items()))
    if r.recorded:
        click.echo(f"  recorded the verification in {r.recorded}: commit it, then release or promote")
