"""Commands that set a repository up: init, add, evalset add."""
from __future__ import annotations


import click

from gitmodel.cli.app import EVALSET_NAME, MODEL_NAME, cli, emit_json, json_option, plural
from gitmodel.cli.render import lineage

@cli.command()
@click.option("--ci", type=click.Choice(["github"]),
              help="Also write the CI workflows: the `git model diff` comment on pull requests "
                   "(.github/workflows/model-diff.yml) and the scheduled production monitor "
                   "(.github/workflows/model-monitor.yml).")
@json_option
def init(ci: str | None, as_json: bool) -> None:
    """Make this git repository a git-model repository.

    Runs `dvc init` when .dvc/ is missing, writes dvc.yaml (artifacts and the
    eval stage of model x eval set pairs) and params.yaml (eval settings with documented
    defaults), creates models/, evalsets/ and metrics/, and stages the new
    files with `git add` (it does not commit). Running it again changes nothing.
    With --ci github it also writes .github/workflows/model-diff.yml, which
    posts (and updates) one `git model diff --md` comment per pull request,
    and .github/workflows/model-monitor.yml, which runs drift and
    retrain-check on the production logs weekly or monthly (by each model's
    risk tier) and opens or updates one issue per model that alerts; an
    existing, edited workflow file is left alone.

    \b
    Example:
      git init my-models && cd my-models
      git model init --ci github
    """
    from gitmodel import project

    workflow = None
    if ci:
        from gitmodel import ci as ci_core

        result, workflow = ci_core.init_with_ci(ci)
    else:
        result = project.init()
    if as_json:
        emit_json(result.to_dict())
        return
    if workflow is not None:
        click.echo({"created": f"Wrote {workflow.path} (staged): pull requests get a `git model diff` comment",
                    "unchanged": f"{workflow.path} is already there: nothing to do",
                    "kept": f"{workflow.path} exists with your edits: left as it is"}[workflow.status])
        monitor = result.monitor
        click.echo({"created": f"Wrote {monitor.path} (staged): drift and retrain-check on a schedule, an issue "
                               "per model that alerts",
                    "unchanged": f"{monitor.path} is already there: nothing to do",
                    "kept": f"{monitor.path} exists with your edits: left as it is"}[monitor.status])
    if not result.changed:
        click.echo(f"git-model is already set up in {result.root}: nothing to do.")
        return
    click.echo(f"Initialized git-model in {result.root}")
    for path in result.created:
        click.echo(f"  + {path}")
    click.echo("Staged with git add. Next: git model add models/<name>.gguf")


@cli.command()
@click.argument("path", type=click.Path(dir_okay=False, path_type=str))
@click.option("--name", type=MODEL_NAME, help="Model name (default: the file stem). Lowercase letters, digits and '-'.")
@click.option("--dataset", type=click.Path(path_type=str),
              help="Training dataset; its md5 is read from its .dvc file, or hashed when DVC does not track it.")
@click.option("--param", "param_pairs", multiple=True, metavar="KEY=VALUE",
              help="A training hyperparameter; repeatable (--param lr=2e-5 --param epochs=3).")
@click.option("--params-file", type=click.Path(dir_okay=False, path_type=str),
              help="A YAML file of training hyperparameters (--param values override it).")
@click.option("--base-model", help="The model this checkpoint was fine-tuned from, e.g. llama-3.2-1b.")
@click.option("--training-duration", metavar="DURATION", help="How long training took: 3h, 45m, 5400s or 1h30m.")
@click.option("--evalset", "evalsets", type=EVALSET_NAME, multiple=True, metavar="NAME",
              help="Evaluate the model on this tracked eval set; repeatable. Default for a new model: the eval "
                   "sets every other model is evaluated on (every eval set for the first model).")
@click.option("--trained-at", metavar="TIME", help="When training ended (ISO 8601; default: now, or the time "
                                                   "recorded for the same weights).")
@json_option
def add(path, name, dataset, param_pairs, params_file, base_model, training_duration, evalsets, trained_at,
        as_json) -> None:
    """Track a GGUF checkpoint with DVC, with its lineage.

    The file is checked as GGUF by git-model's own bounds-checked reader
    before anything else touches it. It must live at models/<name>.gguf.
    Lineage (dataset with its size, hyperparameters, base model, training
    duration, when training ended) and the
    GGUF header's architecture, size, quantization and context length go into
    the `meta:` of its .dvc file and its artifact in dvc.yaml. Adding a
    changed file again updates both. The eval sets it is evaluated on become
    pairs of the eval stage (`git model pairs` lists them).

    \b
    Example:
      git model add models/chat.gguf --dataset data/train.jsonl \\
          --param lr=2e-5 --param epochs=3 --base-model llama-3.2-1b --training-duration 3h
      git model add models/summariser.gguf --evalset summaries --evalset smoke
    """
    from gitmodel import tracking

    result = tracking.add_model(path, name=name, dataset=dataset, param_pairs=param_pairs,
                                params_file=params_file, base_model=base_model,
                                training_duration=training_duration, evalset_names=evalsets,
                                trained_at=trained_at)
    if as_json:
        emit_json(result.to_dict())
        return
    verb = {"added": "Tracked", "updated": "Updated", "unchanged": "Re-tracked (unchanged)",
            "lineage updated": "Same weights, new lineage for"}[result.status]
    click.echo(f"{verb} model '{result.name}': {result.path} (md5 {result.md5})")
    for line in lineage(result.meta.get("gguf"), result.meta.get("lineage")):
        click.echo(line)
    click.echo(f"Evaluated on: {', '.join(result.evalsets)}" if result.evalsets else
               f"Evaluated on no eval set yet: git model evalset add evalsets/<name>.jsonl --for {result.name}")
    click.echo(f"Staged: {' '.join(result.staged)}. Next: git commit")


@cli.group()
def evalset() -> None:
    """Manage eval sets: held-out examples with known answers (evalsets/<name>.jsonl)."""


@evalset.command("add")
@click.argument("path", type=click.Path(dir_okay=False, path_type=str))
@click.option("--name", type=EVALSET_NAME, help="Eval set name (default: the file stem).")
@click.option("--for", "for_models", type=MODEL_NAME, multiple=True, metavar="MODEL",
              help="Evaluate only this tracked model on it; repeatable. Without --for, a new eval set joins every model.")
@json_option
def evalset_add(path, name, for_models, as_json) -> None:
    """Validate an eval set line by line and track it with DVC.

    Each line is a JSON object: {"id", "input", "expected"?, "labels"?,
    "category"?}. Errors name file:line and the field. Lines over
    eval.max_line_bytes (params.yaml, default 1 MiB) are refused without being
    read whole. With --for, only those models are evaluated on it; without,
    a new eval set joins every model (and says which). An eval set added
    again keeps its pairs, and --for adds to them.

    \b
    Example:
      git model evalset add evalsets/support.jsonl
      git model evalset add evalsets/tickets.jsonl --for triage
    """
    from gitmodel import tracking

    result = tracking.add_evalset(path, name=name, for_models=for_models)
    if as_json:
        emit_json(result.to_dict())
        return
    verb = {"added": "Tracked", "updated": "Updated", "unchanged": "Re-tracked (unchanged)"}[result.status]
    kinds = f"{result.classification} classification, {result.examples - result.classification} generation"
    cats = f"; categories: {', '.join(result.categories)}" if result.categories else ""
    click.echo(f"{verb} eval set '{result.name}': {result.path} (md5 {result.md5})")
    click.echo(f"  {plural(result.examples, 'example')} ({kinds}){cats}")
    if result.joined:
        every = "every model: " if result.for_every_model else ""
        click.echo(f"Evaluated on it ({every}{', '.join(result.joined)}); `dvc repro` runs "
                   f"{plural(len(result.joined), 'new pair')}")
    elif result.for_every_model and not result.models:
        click.echo("No model yet: each model you add joins it (git model add models/<name>.gguf)")
    else:
        click.echo(f"Evaluated on it: {', '.join(result.models)} (unchanged)")
    click.echo(f"Staged: {' '.join(result.staged)}. Next: git commit")
