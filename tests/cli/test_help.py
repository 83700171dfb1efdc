"""Every command, group and option explains itself; the plugin starts the three ways users start it.

The meta-test walks the click tree, so a command added later without help text
(or without an example at the end of its help) fails here without anyone having
to remember to add a test (sqlite-utils' test_docs.py, gto's test_commands_args_help).
"""
from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys

import click
import pytest

import gitmodel
from gitmodel.cli import cli

COMMANDS = ("init", "add", "evalset")


def walk(command: click.Command, path: tuple[str, ...] = ()):
    """(command path, command) for ``command`` and everything below it."""
    yield path, command
    if isinstance(command, click.Group):
        for name, sub in sorted(command.commands.items()):
            yield from walk(sub, (*path, name))


ALL = list(walk(cli))
LEAVES = [(path, cmd) for path, cmd in ALL if not isinstance(cmd, click.Group)]


def ident(item) -> str:
    return " ".join(item[0]) or "git-model"


def test_the_walk_finds_the_setup_commands():
    found = {" ".join(path) for path, _ in ALL}
    assert {"", "init", "add", "evalset", "evalset add"} <= found


@pytest.mark.parametrize("item", ALL, ids=[ident(i) for i in ALL])
def test_every_command_and_group_has_help(item):
    path, command = item
    assert (command.help or "").strip(), f"`git model {' '.join(path)}` has no help text"
    assert command.get_short_help_str().strip(), f"`git model {' '.join(path)}` has no short help"


@pytest.mark.parametrize("item", ALL, ids=[ident(i) for i in ALL])
def test_every_option_has_help(item):
    path, command = item
    missing = [param.opts[0] for param in command.params
               if isinstance(param, click.Option) and param.name != "help" and not (param.help or "").strip()]
    assert not missing, f"`git model {' '.join(path)}`: options without help: {missing}"


@pytest.mark.parametrize("item", LEAVES, ids=[ident(i) for i in LEAVES])
def test_every_command_help_ends_with_an_example_block(item):
    path, command = item
    lines = command.help.rstrip().splitlines()
    starts = [i for i, line in enumerate(lines) if line.strip().startswith("Example")]
    assert starts, f"`git model {' '.join(path)}` help has no 'Example' block"
    block = lines[starts[-1] + 1:]
    example_lines = [line for line in block if line.strip()]
    assert example_lines, "the Example block is empty"
    # the block is the end of the help: every line after the heading is an indented example
    assert all(line.startswith((" ", "\t")) for line in example_lines), block
    assert any(line.strip().startswith("git model " + " ".join(path)) for line in example_lines), (
        f"the Example block of `git model {' '.join(path)}` does not run that command: {block}")
    # \b keeps click from re-wrapping the example lines into one paragraph
    assert lines[starts[-1] - 1].strip() == "\b"


@pytest.mark.parametrize("item", ALL, ids=[ident(i) for i in ALL])
def test_help_renders_for_every_command(runner, item):
    path, command = item
    result = runner.invoke(cli, [*path, "--help"], prog_name="git model")
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith(f"Usage: git model {' '.join(path)}".rstrip() + " ")
    if not isinstance(command, click.Group):
        assert re.search(r"\n  Examples?:\n", result.stdout), result.stdout


def test_short_help_flag_matches_long(runner):
    assert runner.invoke(cli, ["-h"]).stdout == runner.invoke(cli, ["--help"]).stdout


# -- the three ways to start it, as real processes -------------------------------------------------


def run(*args: str, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(list(args), capture_output=True, text=True, timeout=60, **kwargs)


def assert_lists_commands(text: str) -> None:
    assert "Usage: git model [OPTIONS] COMMAND [ARGS]..." in text
    assert "Commands:" in text
    commands = text.split("Commands:", 1)[1]
    for name in COMMANDS:
        assert f"\n  {name} " in commands, f"{name} missing from:\n{commands}"


@pytest.fixture
def outside(tmp_path, monkeypatch):
    """A folder that is no git repository: help must not need one."""
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path))
    return tmp_path


def test_console_script_help(outside):
    exe = shutil.which("git-model")
    assert exe, "the git-model console script is not on PATH"
    proc = run(exe, "--help", cwd=outside)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""
    assert_lists_commands(proc.stdout)


def test_git_runs_the_plugin(outside):
    # `git model -h` reaches git-model (git hands -h to the command)
    proc = run("git", "model", "-h", cwd=outside)
    assert proc.returncode == 0, proc.stderr
    assert_lists_commands(proc.stdout)


@pytest.mark.parametrize("how", ["console script", "git", "python -m"])
def test_version(outside, how):
    cmd = {"console script": [shutil.which("git-model") or "git-model"],
           "git": ["git", "model"],
           "python -m": [sys.executable, "-m", "gitmodel"]}[how]
    proc = run(*cmd, "--version", cwd=outside)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == f"git-model {gitmodel.__version__}\n"


def test_version_matches_the_installed_distribution():
    from importlib.metadata import version

    assert gitmodel.__version__ == version("git-model")


def test_python_dash_m(outside):
    proc = run(sys.executable, "-m", "gitmodel", "--help", cwd=outside)
    assert proc.returncode == 0, proc.stderr
    assert_lists_commands(proc.stdout)


HEAVY = ("dvc", "llama_cpp")

PROBE = """
import json, sys
{body}
heavy = sorted(m for m in sys.modules if m.split(".")[0] in {heavy!r})
print(json.dumps(heavy))
"""


def probe(body: str, cwd) -> list[str]:
    proc = run(sys.executable, "-c", PROBE.format(body=body, heavy=set(HEAVY)), cwd=cwd)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_importing_the_cli_imports_neither_dvc_nor_llama_cpp(outside):
    assert probe("import gitmodel.cli", outside) == []


@pytest.mark.parametrize("argv", [["--help"], ["add", "--help"], ["evalset", "add", "--help"], ["--version"]])
def test_help_and_version_import_neither_dvc_nor_llama_cpp(outside, argv):
    body = (
        "import contextlib, io\n"
        "from gitmodel.cli import cli\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n"
        f"    try: cli.main({argv!r}, prog_name='git model')\n"
        "    except SystemExit as e: assert e.code == 0, e.code\n"
    )
    assert probe(body, outside) == []


# -- `git model --help` is git's (a manual page), so every usage hint says `-h` --------------------


@pytest.mark.parametrize("item", ALL, ids=[ident(i) for i in ALL])
def test_every_usage_error_points_at_dash_h(runner, item):
    path, _ = item
    result = runner.invoke(cli, [*path, "--no-such-option"], prog_name="git model")
    assert result.exit_code == 2
    command = " ".join(("git model", *path))
    assert f"Try '{command} -h' for help." in result.stderr, result.stderr
    assert "--help" not in result.stderr


def test_dash_h_through_git_reaches_every_command(outside):
    for path, _ in LEAVES:
        proc = run("git", "model", *path, "-h", cwd=outside)
        assert proc.returncode == 0, (path, proc.stderr)
        assert proc.stdout.startswith(f"Usage: git model {' '.join(path)}")


def test_python_dash_m_usage_error_points_at_dash_h(outside):
    proc = run(sys.executable, "-m", "gitmodel", "add", cwd=outside)
    assert proc.returncode == 2
    assert "Try 'git model add -h' for help." in proc.stderr


def test_every_name_version_stage_and_wait_parameter_is_checked_by_the_grammar():
    """A command added later with a plain `--wait` or MODEL argument would let -5 or 'Bad_Name' reach the core."""
    from gitmodel.cli import app

    # (rollback --to is a revision, resolved against the repository by the one revision grammar)
    expected = {"wait": app.SECONDS, "fraction": app.FRACTION, "model": app.MODEL_NAME, "stage": app.STAGE_NAME,
                "version": app.VERSION, "evalset": app.EVALSET_NAME, "evalsets": app.EVALSET_NAME}
    checked = 0
    for path, command in ALL:
        for param in command.params:
            if param.name in expected and not getattr(param, "is_flag", False):
                assert param.type is expected[param.name], (path, param.name, param.type)
                checked += 1
    assert checked >= 20
