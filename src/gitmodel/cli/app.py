"""The ``git model`` group, its error handling and the options shared by commands."""
from __future__ import annotations

import json
import math
import sys

import click

from gitmodel import __version__
from gitmodel.interrupts import MESSAGE as INTERRUPTED
from gitmodel.errors import GitModelError


# `git model --help` is read by git itself, which opens a manual page; `-h`
# reaches git-model. Usage errors point at the spelling that works.
HELP_HINT_OPTION = "-h"


def _show_usage_error(e: click.UsageError) -> None:
    """click's usage error (usage line, help hint, ``Error: ...``), with the ``-h`` hint."""
    if e.ctx is not None:
        click.echo(f"{e.ctx.get_usage()}\nTry '{e.ctx.command_path} {HELP_HINT_OPTION}' for help.\n",
                   err=True, color=e.ctx.color)
    click.echo(f"Error: {e.format_message()}", err=True)


class GitModelGroup(click.Group):
    """Catches every GitModelError in one place: ``Error: ...`` on stderr and the error's exit code."""

    def main(self, *args, standalone_mode: bool = True, **kwargs):
        if not standalone_mode:
            return super().main(*args, standalone_mode=False, **kwargs)
        # click's standalone mode, but usage errors are shown by _show_usage_error
        try:
            code = super().main(*args, standalone_mode=False, **kwargs)
        except click.UsageError as e:
            _show_usage_error(e)
            sys.exit(e.exit_code)
        except click.ClickException as e:
            e.show()
            sys.exit(e.exit_code)
        except click.Abort as e:
            if isinstance(e.__context__, KeyboardInterrupt):     # Ctrl-C while click parsed the arguments
                click.echo(INTERRUPTED, err=True)
                sys.exit(130)
            click.echo("Aborted!", err=True)
            sys.exit(1)
        sys.exit(code if isinstance(code, int) else 0)

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
        except KeyboardInterrupt as e:
            click.echo(str(e) or INTERRUPTED, err=True)     # a command that wrote something says what
            ctx.exit(130)


class _Grammar(click.ParamType):
    """A name or version checked by the one grammar in refs.py: a bad one is a usage error (exit 2)."""

    def __init__(self, what: str):
        self.what = what
        self.name = what

    def convert(self, value, param, ctx):
        from gitmodel import refs
        from gitmodel.errors import InvalidName

        try:
            if self.what == "version":
                refs.Version.parse(value)
            else:
                refs.check_name(value, self.what)
        except InvalidName as e:
            self.fail(e.message, param, ctx)
        return value


MODEL_NAME = _Grammar("model name")
EVALSET_NAME = _Grammar("eval set name")
STAGE_NAME = _Grammar("stage name")
VERSION = _Grammar("version")


class _Number(click.ParamType):
    """A finite float in a range (click's FloatRange lets "nan" through)."""

    name = "number"

    def __init__(self, low: float, high: float | None = None, low_open: bool = False, what: str = ""):
        self.low, self.high, self.low_open, self.what = low, high, low_open, what

    def convert(self, value, param, ctx):
        try:
            number = float(value)
        except (TypeError, ValueError):
            self.fail(f"{value!r} is not a number", param, ctx)
        too_low = number <= self.low if self.low_open else number < self.low
        if math.isnan(number) or too_low or (self.high is not None and number > self.high):
            self.fail(f"{value} is not {self.what}", param, ctx)
        return number


FRACTION = _Number(0.0, 1.0, low_open=True, what="a fraction with 0 < F <= 1")
SECONDS = _Number(0.0, what="a number of seconds >= 0")


def wait_option(f):
    return click.option("--wait", type=SECONDS, default=0.0, show_default=True, metavar="SECONDS",
                        help="Wait this long for another git-model command holding the repository lock.")(f)


def plural(n: int, word: str, words: str | None = None) -> str:
    """``1 example``, ``2 examples``."""
    return f"{n} {word if n == 1 else words or word + 's'}"


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
