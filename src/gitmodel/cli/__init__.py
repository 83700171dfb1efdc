"""The ``git model`` command line: parse, call one core function, render.

The only package that prints or exits. Each module holds the commands of one
area; core modules are imported inside the commands so that
``git model --help`` starts fast.
"""
from gitmodel.cli.app import cli, main
from gitmodel.cli import evaluation, setup  # noqa: F401  (importing registers the commands)
from gitmodel.cli import stages  # noqa: F401  (promote, end, rollback, status)
from gitmodel.cli import history  # noqa: F401  (release, log, show, plot)
from gitmodel.cli import diff, gate  # noqa: F401  (diff, gate)
from gitmodel.cli import serving  # noqa: F401  (serve, canary-check)
from gitmodel.cli import forensics  # noqa: F401  (blame, bisect, weights-diff)
from gitmodel.cli import pairs  # noqa: F401  (pairs)
from gitmodel.cli import monitor  # noqa: F401  (drift, retrain-check, sample, review)
from gitmodel.cli import sharing  # noqa: F401  (push, fetch, gc)

__all__ = ["cli", "main"]
