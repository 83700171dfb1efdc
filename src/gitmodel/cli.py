"""The ``git model`` command line: parse, call one core function, render.

The only module that prints or exits. Core modules are imported inside the
commands so that ``git model --help`` starts fast.
"""
from __future__ import annotations

import json
import sys

import click

from gitmodel import __version__
from gitmodel.errors import GitModelError


class GitModelGroup(click.Group):
    """Catches every GitModelError in one place: ``Error: ...`` on stderr, exit code from DESIGN.md."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except GitModelError as e:
            if (ctx.obj or {}).get("traceback"):
                raise
            click.echo(f"Error: {e.message}", err=True)
            if e.hint:
                click.echo(f"  hint: {e.hint}", err=True)
            ctx.exit(e.exit_code)
        except KeyboardInterrupt:
            click.echo("Interrupted: nothing was written.", err=True)
            ctx.exit(130)


def json_option(f):
    return click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON instead of text.")(f)


def _emit_json(data) -> None:
    click.echo(json.dumps(data, indent=2, sort_keys=False, default=str))


@click.group(cls=GitModelGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "--version", prog_name="git-model", message="%(prog)s %(version)s")
@click.option("--traceback", is_flag=True, help="Show the full Python traceback of an error (for bug reports).")
@click.pass_context
def cli(ctx: click.Context, traceback: bool) -> None:
    """git-model: versions, diffs, an eval gate and rollback for the model weights you own.

    Checkpoints and eval sets are DVC artifacts, metrics are JSON files in git,
    releases and stages are git tags (GTO's format). Run it as `git model ...`.

    \b
    Getting started:
      git model init
      git model add models/chat.gguf --base-model llama-3.2-1b --training-duration 3h
      git model evalset add evalsets/support.jsonl
      git commit -m "track chat checkpoint and support eval set"
    """
    ctx.ensure_object(dict)
    ctx.obj["traceback"] = traceback


@cli.command()
@json_option
def init(as_json: bool) -> None:
    """Make this git repository a git-model repository.

    Runs `dvc init` when .dvc/ is missing, writes dvc.yaml (artifacts and the
    eval matrix stage) and params.yaml (eval settings with documented
    defaults), creates models/, evalsets/ and metrics/, and stages the new
    files with `git add` (it does not commit). Running it again changes nothing.

    \b
    Example:
      git init my-models && cd my-models
      git model init
    """
    from gitmodel import project

    result = project.init()
    if as_json:
        _emit_json({"root": str(result.root), "changed": result.changed, "created": result.created})
        return
    if not result.changed:
        click.echo(f"git-model is already set up in {result.root}: nothing to do.")
        return
    click.echo(f"Initialized git-model in {result.root}")
    for path in result.created:
        click.echo(f"  + {path}")
    click.echo("Staged with git add. Next: git model add models/<name>.gguf")


def _render_lineage(meta: dict) -> list[str]:
    lines = []
    g = meta.get("gguf") or {}
    if g:
        params = g.get("parameters")
        shown = f"{params:,}" if isinstance(params, int) else "?"
        lines.append(f"  gguf:      {g.get('architecture') or '?'}, {shown} parameters, "
                     f"{g.get('quantization') or '?'}, context {g.get('context_length') or '?'}")
    lin = meta.get("lineage") or {}
    if "dataset" in lin:
        lines.append(f"  dataset:   {lin['dataset']['path']} (md5 {lin['dataset']['md5']})")
    if "params" in lin:
        lines.append("  params:    " + ", ".join(f"{k}={v}" for k, v in lin["params"].items()))
    if "base_model" in lin:
        lines.append(f"  base:      {lin['base_model']}")
    if "training_duration_s" in lin:
        lines.append(f"  trained:   {lin['training_duration_s']} s")
    return lines


@cli.command()
@click.argument("path", type=click.Path(dir_okay=False, path_type=str))
@click.option("--name", help="Model name (default: the file stem). Lowercase letters, digits and '-'.")
@click.option("--dataset", type=click.Path(path_type=str),
              help="Training dataset; its md5 is read from its .dvc file, or hashed when DVC does not track it.")
@click.option("--param", "param_pairs", multiple=True, metavar="KEY=VALUE",
              help="A training hyperparameter; repeatable (--param lr=2e-5 --param epochs=3).")
@click.option("--params-file", type=click.Path(dir_okay=False, path_type=str),
              help="A YAML file of training hyperparameters (--param values override it).")
@click.option("--base-model", help="The model this checkpoint was fine-tuned from, e.g. llama-3.2-1b.")
@click.option("--training-duration", metavar="DURATION", help="How long training took: 3h, 45m, 5400s or 1h30m.")
@json_option
def add(path, name, dataset, param_pairs, params_file, base_model, training_duration, as_json) -> None:
    """Track a GGUF checkpoint with DVC, with its lineage.

    The file is checked as GGUF by git-model's own bounds-checked reader
    before anything else touches it. It must live at models/<name>.gguf.
    Lineage (dataset, hyperparameters, base model, training duration) and the
    GGUF header's architecture, size, quantization and context length go into
    the `meta:` of its .dvc file and its artifact in dvc.yaml. Adding a
    changed file again updates both.

    \b
    Example:
      git model add models/chat.gguf --dataset data/train.jsonl \\
          --param lr=2e-5 --param epochs=3 --base-model llama-3.2-1b --training-duration 3h
    """
    from gitmodel import tracking

    result = tracking.add_model(path, name=name, dataset=dataset, param_pairs=param_pairs,
                                params_file=params_file, base_model=base_model,
                                training_duration=training_duration)
    if as_json:
        _emit_json({"name": result.name, "path": result.path, "md5": result.md5, "status": result.status,
                    "dvc_file": result.dvc_file, "meta": result.meta, "staged": result.staged})
        return
    verb = {"added": "Tracked", "updated": "Updated", "unchanged": "Re-tracked (unchanged)"}[result.status]
    click.echo(f"{verb} model '{result.name}': {result.path} (md5 {result.md5})")
    for line in _render_lineage(result.meta):
        click.echo(line)
    click.echo(f"Staged: {' '.join(result.staged)}. Next: git commit")


@cli.group()
def evalset() -> None:
    """Manage eval sets: held-out examples with known answers (evalsets/<name>.jsonl)."""


@evalset.command("add")
@click.argument("path", type=click.Path(dir_okay=False, path_type=str))
@click.option("--name", help="Eval set name (default: the file stem).")
@json_option
def evalset_add(path, name, as_json) -> None:
    """Validate an eval set line by line and track it with DVC.

    Each line is a JSON object: {"id", "input", "expected"?, "labels"?,
    "category"?}. Errors name file:line and the field. Lines over
    eval.max_line_bytes (params.yaml, default 1 MiB) are refused without being
    read whole. The eval set joins the eval matrix in dvc.yaml.

    \b
    Example:
      git model evalset add evalsets/support.jsonl
    """
    from gitmodel import tracking

    result = tracking.add_evalset(path, name=name)
    if as_json:
        _emit_json({"name": result.name, "path": result.path, "md5": result.md5, "status": result.status,
                    "examples": result.examples, "classification": result.classification,
                    "categories": result.categories, "staged": result.staged})
        return
    verb = {"added": "Tracked", "updated": "Updated", "unchanged": "Re-tracked (unchanged)"}[result.status]
    kinds = f"{result.classification} classification, {result.examples - result.classification} generation"
    cats = f"; categories: {', '.join(result.categories)}" if result.categories else ""
    click.echo(f"{verb} eval set '{result.name}': {result.path} (md5 {result.md5})")
    click.echo(f"  {result.examples} examples ({kinds}){cats}")
    click.echo(f"Staged: {' '.join(result.staged)}. Next: git commit")


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
@click.argument("model")
@click.option("--evalset", "-e", required=True, help="Eval set name (evalsets/<name>.jsonl).")
@runner_options
@click.option("--force", is_flag=True, help="Re-run even when the stored result is for the same inputs.")
@click.option("--wait", type=float, default=0.0, show_default=True, metavar="SECONDS",
              help="Wait this long for another git-model command holding the repository lock.")
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
    if as_json:
        _emit_json({"model": result.model, "evalset": result.evalset, "cached": result.cached,
                    "metrics_path": result.metrics_path, "outputs_path": result.outputs_path,
                    "seconds": round(result.seconds, 3), **result.doc})
        return
    if result.cached:
        click.echo(f"Up to date: {result.metrics_path} already holds this model, eval set, params and runner "
                   "(--force to re-run)")
    else:
        click.echo(f"Evaluated {result.model} on {result.evalset} in {result.seconds:.2f} s "
                   f"-> {result.metrics_path}, {result.outputs_path}")
    click.echo("  " + _headline(result.doc))


@cli.command()
@click.argument("model")
@click.option("--evalset", "-e", help="Verify this eval set only (default: every stored result of the model).")
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
        _emit_json([{"model": r.model, "evalset": r.evalset, "rev": r.rev, "n": r.n, "identical": r.identical,
                     "problem": r.problem,
                     "differences": [vars(d) for d in r.differences]} for r in reports])
    else:
        for r in reports:
            where = f"{r.model} on {r.evalset} at {r.rev}"
            if r.identical:
                click.echo(f"Reproduced: {where}: all {r.n} outputs identical, byte for byte")
            elif r.problem:
                click.echo(f"NOT reproducible: {where}: {r.problem}")
            else:
                click.echo(f"MISMATCH: {where}: {len(r.differences)} of {r.n} outputs differ")
                for d in r.differences[:verify_core.SHOWN_DIFFERENCES]:
                    click.echo(f"  {d.id}")
                    click.echo(f"    - stored:     {d.stored}")
                    click.echo(f"    + reproduced: {d.reproduced}")
                if len(r.differences) > verify_core.SHOWN_DIFFERENCES:
                    rest = ", ".join(d.id for d in r.differences[verify_core.SHOWN_DIFFERENCES:])
                    click.echo(f"  ... and {len(r.differences) - verify_core.SHOWN_DIFFERENCES} more: {rest}")
    ctx.exit(0 if ok else 1)


def main() -> None:
    cli(prog_name="git model")


if __name__ == "__main__":  # pragma: no cover
    main()
