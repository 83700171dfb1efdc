"""The man pages: generated from the click commands, committed current, installed where `man` looks,
and what `git model --help` shows (git turns it into `man git-model`)."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import click
import pytest

from gitmodel.cli import cli
from scripts import manpages

COMMITTED = manpages.MAN_DIR
VENV_PAGES = Path(sys.executable).parent.parent / "share" / "man" / "man1"
ALL = list(manpages.walk(cli))


def run(*args: str, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(list(args), capture_output=True, text=True, timeout=120, **kwargs)


def test_the_committed_pages_are_the_commands():
    assert manpages.stale() == [], "man pages out of date with the commands: run `make man` and commit man/man1/"


def test_every_command_and_group_has_a_page():
    names = {p.name for p in COMMITTED.glob("*.1")}
    for path, _ in ALL:
        assert manpages.page_name(path) + ".1" in names
    assert {"git-model.1", "git-model-add.1", "git-model-evalset.1", "git-model-evalset-add.1"} <= names


def test_a_changed_command_makes_its_page_stale(tmp_path, monkeypatch):
    manpages.write(tmp_path)
    assert manpages.stale(tmp_path) == []
    monkeypatch.setattr(cli.commands["add"], "help", cli.commands["add"].help.replace("bounds-checked", "careful"))
    assert manpages.stale(tmp_path) == ["git-model-add.1"]


def test_a_new_option_or_command_makes_pages_stale(tmp_path, monkeypatch):
    manpages.write(tmp_path)
    option = click.Option(["--shiny"], is_flag=True, help="A new option.")
    monkeypatch.setattr(cli.commands["log"], "params", [*cli.commands["log"].params, option])
    assert manpages.stale(tmp_path) == ["git-model-log.1"]

    @click.command()
    def fresh():
        """A new command.

        \b
        Example:
          git model fresh
        """
    monkeypatch.setitem(cli.commands, "fresh", fresh)
    assert manpages.stale(tmp_path) == ["git-model-fresh.1", "git-model-log.1", "git-model.1"]


def test_a_page_left_from_a_removed_command_is_stale_and_removed(tmp_path):
    manpages.write(tmp_path)
    (tmp_path / "git-model-gone.1").write_text(".TH GONE 1\n")
    assert manpages.stale(tmp_path) == ["git-model-gone.1"]
    manpages.write(tmp_path)
    assert not (tmp_path / "git-model-gone.1").exists() and manpages.stale(tmp_path) == []


def test_the_check_mode_exits_1_naming_the_stale_page(tmp_path, capsys):
    manpages.write(tmp_path)
    assert manpages.main(["--check", "--dir", str(tmp_path)]) == 0
    (tmp_path / "git-model-diff.1").write_text("old\n")
    assert manpages.main(["--check", "--dir", str(tmp_path)]) == 1
    assert f"out of date: {tmp_path / 'git-model-diff.1'}" in capsys.readouterr().err


@pytest.mark.parametrize("item", ALL, ids=[" ".join(p) or "git-model" for p, _ in ALL])
def test_each_page_holds_the_usage_options_and_examples(item):
    path, command = item
    page = (COMMITTED / (manpages.page_name(path) + ".1")).read_text(encoding="utf-8")
    ctx = click.Context(command, **command.context_settings)
    assert manpages.escape(" ".join(command.collect_usage_pieces(ctx))) in page
    options = page.split(".SH OPTIONS\n", 1)[1].split("\n.SH ", 1)[0]
    for param in command.params:
        if isinstance(param, click.Option):
            opts, help_text = param.get_help_record(ctx)
            assert f"\\fB{manpages.escape(opts)}\\fR\n{manpages.escape(help_text)}\n" in options
    for kind, lines in manpages.blocks(command.help):
        if kind == "pre" and lines[0].strip().startswith("Example"):
            examples = page.split(".SH EXAMPLES\n", 1)[1]
            for line in lines[1:]:
                assert manpages.escape(line.strip()) in examples


@pytest.mark.parametrize("text, roff", [
    ("--name NAME", "\\-\\-name NAME"),                       # a minus sign, so that copied options work
    (".dvc files", "\\&.dvc files"),                           # not a roff request
    ("'quoted", "\\&'quoted"),
    ("a \\ b", "a \\e b"),
    ("run `git model init`", "run \\fBgit model init\\fR"),
])
def test_escape(text, roff):
    assert manpages.escape(text) == roff


@pytest.mark.skipif(not shutil.which("groff"), reason="groff is not installed")
def test_the_pages_are_valid_roff():
    for page in sorted(COMMITTED.glob("*.1")):
        proc = run("groff", "-man", "-Tutf8", "-ww", "-z", str(page))
        assert proc.returncode == 0 and proc.stderr == "", f"{page.name}: {proc.stderr}"


def test_the_venv_holds_the_committed_pages():
    # where `man` looks for a <venv>/bin on PATH; `make install` links it to man/man1
    for page in COMMITTED.glob("*.1"):
        installed = VENV_PAGES / page.name
        assert installed.is_file(), f"{installed} is missing: run `make install`"
        assert installed.read_bytes() == page.read_bytes()


@pytest.fixture
def outside(tmp_path, monkeypatch):
    """A folder that is no git repository, and `man`'s search path derived from PATH alone."""
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path))
    monkeypatch.delenv("MANPATH", raising=False)
    monkeypatch.setenv("MANWIDTH", "100")
    return tmp_path


needs_man = pytest.mark.skipif(not shutil.which("man"), reason="man is not installed (apt-get install man-db)")


@needs_man
def test_git_model_help_prints_the_manual(outside):
    assert os.environ["PATH"].split(os.pathsep)[0] == str(Path(sys.executable).parent)
    proc = run("git", "model", "--help", cwd=outside)
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert out.startswith("GIT-MODEL(1)")
    assert "git-model - versions, diffs, an eval gate and rollback for the model weights you own" in out
    for section in ("NAME", "SYNOPSIS", "DESCRIPTION", "COMMANDS", "OPTIONS", "EXIT STATUS", "SEE ALSO"):
        assert f"\n{section}\n" in out
    assert "git model evalset add evalsets/support.jsonl" in out
    assert "git-model-rollback(1)" in out


@needs_man
@pytest.mark.parametrize("page, expected", [
    ("git-model-evalset-add", "git model evalset add evalsets/support.jsonl"),
    ("git-model-gate", "--rerun"),
])
def test_man_finds_every_command_page(outside, page, expected):
    proc = run("man", page, cwd=outside)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith(page.upper() + "(1)") and expected in proc.stdout


@pytest.mark.slow
def test_a_wheel_installs_the_pages_where_man_finds_them(tmp_path):
    # the system-wide route: a wheel's data files go to <prefix>/share/man/man1 beside <prefix>/bin.
    # Built from a copy, so that the build leaves nothing in the checkout.
    root, src = COMMITTED.parent.parent, tmp_path / "src"
    shutil.copytree(root / "src", src / "src", ignore=shutil.ignore_patterns("*.egg-info", "__pycache__"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(root / name, src / name)
    shutil.copytree(root / "man", src / "man")
    proc = run(sys.executable, "-m", "pip", "wheel", "--no-deps", "-v", "-w", str(tmp_path / "dist"), str(src))
    assert proc.returncode == 0, proc.stderr
    assert "deprecated" not in proc.stdout + proc.stderr     # e.g. project.license as a TOML table
    wheel, = (tmp_path / "dist").glob("git_model-*.whl")
    with zipfile.ZipFile(wheel) as z:
        shipped = {Path(n).name for n in z.namelist() if "/data/share/man/man1/" in n}
    assert shipped == {p.name for p in COMMITTED.glob("*.1")}
    prefix = tmp_path / "prefix"
    # --ignore-installed: without it pip would first uninstall the git-model of the test venv
    proc = run(sys.executable, "-m", "pip", "install", "--no-deps", "--ignore-installed", "-q",
               "--prefix", str(prefix), str(wheel))
    assert proc.returncode == 0, proc.stderr
    assert (prefix / "bin" / "git-model").exists()
    page = prefix / "share" / "man" / "man1" / "git-model.1"
    assert page.read_bytes() == (COMMITTED / "git-model.1").read_bytes()
    if shutil.which("man"):
        env = {k: v for k, v in os.environ.items() if k != "MANPATH"}
        env["PATH"] = f"{prefix / 'bin'}{os.pathsep}/usr/bin{os.pathsep}/bin"
        proc = run("man", "-w", "git-model", env=env)
        assert proc.stdout.strip() == str(page), proc.stderr
