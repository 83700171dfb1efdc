"""The ``git model`` group, its error handling and the options shared by commands."""
from __future__ import annotations

import json

import click

from gitmodel import __version__
from gitmodel.errors import GitModelError


class GitModelGroup(click.Group):
    """Catches every GitModelError in one place: ``Error: ...`` on stderr and the error's exit code."""

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


def emit_json(data) -> None:
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



def main() -> None:
    cli(prog_name="git model")
