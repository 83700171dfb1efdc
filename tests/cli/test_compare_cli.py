"""`git model diff` and `git model gate` at the command line: exit codes, exact messages, the table
format, and the lean import path that keeps `diff A B` fast."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest
from tabulate import tabulate

from gitmodel.cli import cli
from gitmodel.cli.compare import table
from tests.conftest import git

ROWS = [
    ["metrics/chat/support.json", "accuracy", "0.75", "0.925", "+0.175", "better"],
    ["metrics/chat/support.json", "labels.neg.fpr", "0", "-", "", "changed"],
    ["m", "n", "400", "400", "0", ""],
]


@pytest.mark.parametrize("headers, align", [
    (["Path", "Metric", "HEAD", "workspace", "Change", ""], ("left", "left", "right", "right", "right", "left")),
    (["P", "M", "a-very-long-revision-name", "b", "", "Verdict"], ("left", "right", "left", "right", "left", "left")),
])
@pytest.mark.parametrize("rows", [ROWS, ROWS[:1]])   # never called without rows
def test_table_is_tabulates_simple_format(headers, align, rows):
    assert table(rows, headers, align) == tabulate(rows, headers=headers, disable_numparse=True, colalign=align)


@pytest.mark.parametrize("argv", [["diff", "--json", "--md"], ["gate", "chat", "--json", "--md"]])
def test_json_and_md_together_is_a_usage_error(runner, gm_repo, argv):
    result = runner.invoke(cli, argv, prog_name="git model")
    assert result.exit_code == 2
    assert result.stderr.endswith("Error: --json and --md cannot be used together\n")


def test_precision_out_of_range_is_a_usage_error(runner, gm_repo):
    result = runner.invoke(cli, ["diff", "--precision", "-1"], prog_name="git model")
    assert result.exit_code == 2
    assert "Invalid value for '--precision'" in result.stderr


def test_diff_and_gate_outside_a_git_model_repository(runner, git_repo):
    for argv in (["diff"], ["gate", "chat"]):
        result = runner.invoke(cli, argv)
        assert result.exit_code == 3
        assert result.stderr == (f"Error: {git_repo} is not a git-model repository (no dvc.yaml or .dvc/)\n"
                                 "  hint: run `git model init` first\n")


def test_gate_names_a_bad_model_and_a_bad_gate_setting(runner, gm_repo):
    result = runner.invoke(cli, ["gate", "Chat"])
    assert result.exit_code == 2
    assert "Error: Invalid value for 'MODEL': invalid model name 'Chat': use lowercase letters" in result.stderr
    (gm_repo / "params.yaml").write_text("gate:\n  tolerances: {accuracy: 0.1}\n")
    result = runner.invoke(cli, ["gate", "chat"])
    assert result.exit_code == 3
    assert result.stderr == (f"Error: {gm_repo / 'params.yaml'}: gate.tolerances is not a gate setting "
                             "(known: quality_tolerance, timing_tolerance, tolerance, accept)\n")
    (gm_repo / "params.yaml").write_text("gate:\n  timing_tolerance: fast\n")
    result = runner.invoke(cli, ["gate", "chat"])
    assert result.stderr == (f"Error: {gm_repo / 'params.yaml'}: gate.timing_tolerance must be a number >= 0, "
                             "got 'fast'\n  hint: fix gate.timing_tolerance in params.yaml (default: 0.5)\n")


def test_gate_without_candidate_results(runner, gm_repo):
    git(gm_repo, "tag", "-a", "chat@v1.0.0", "-m", "Registering artifact chat version v1.0.0")
    git(gm_repo, "tag", "-a", "chat#prod#1", "-m", "Assigning stage prod to artifact chat version v1.0.0")
    result = runner.invoke(cli, ["gate", "chat"])
    assert result.exit_code == 3
    assert result.stderr == ("Error: no stored result of 'chat' at workspace to gate (nothing at metrics/chat/)\n"
                             "  hint: evaluate it first: `git model eval chat --evalset NAME` (or `dvc repro`)\n")


def test_diff_and_gate_are_listed(runner):
    out = runner.invoke(cli, ["--help"]).stdout
    assert "\n  diff " in out and "\n  gate " in out


LEAN = """
import contextlib, io, json, sys
from gitmodel.cli import cli
with contextlib.redirect_stdout(io.StringIO()):
    try:
        cli.main(["diff", "sentiment@v1.0.0", "sentiment@v1.2.0"], prog_name="git model")
    except SystemExit as e:
        assert e.code == 0, e.code
heavy = sorted(m for m in sys.modules if m.split(".")[0] in {"dvc", "numpy", "jsonschema", "tabulate", "llama_cpp",
                                                             "ruamel", "git"})
print(json.dumps(heavy))
"""


def test_diff_between_two_revisions_imports_nothing_heavy(released):
    # A fresh process, as `git model diff A B` runs. The first run validates the two metrics blobs
    # (jsonschema) and records their shas; from then on dvc, numpy, jsonschema and tabulate stay out.
    for _ in range(2):
        proc = subprocess.run([sys.executable, "-c", LEAN], cwd=released, capture_output=True, text=True)
        assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout.strip().splitlines()[-1]) == []
