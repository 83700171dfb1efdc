"""`git model diff` and `git model gate` at the command line: exit codes, exact messages, the table
format, and the lean import path that keeps `diff A B` fast."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest
from tabulate import tabulate

from gitmodel.cli import cli
from gitmodel.cli.render import table
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
@pytest.mark.parametrize("fmt", ["simple", "plain"])
def test_table_is_tabulates_format(headers, align, rows, fmt):
    assert table(rows, headers, align, fmt) == tabulate(rows, headers=headers, tablefmt=fmt, disable_numparse=True,
                                                        colalign=align)


@pytest.mark.parametrize("fmt", ["simple", "plain"])
def test_table_is_tabulates_format_on_random_cells(fmt):
    # cells with inner and surrounding blanks, empty cells and headers, no headers at all
    import random

    rng = random.Random(fmt)
    for _ in range(500):
        columns = rng.randint(1, 5)
        headers = ["".join(rng.choice("ab ") for _ in range(rng.randint(0, 9))) for _ in range(columns)] \
            if rng.random() < 0.8 else []
        rows = [["".join(rng.choice("xy-.0 ") for _ in range(rng.randint(0, 12))) for _ in range(columns)]
                for _ in range(rng.randint(1, 4))]
        align = tuple(rng.choice(["left", "right"]) for _ in range(columns))
        assert table(rows, headers, align, fmt) == tabulate(rows, headers=headers, tablefmt=fmt,
                                                            disable_numparse=True, colalign=align), (headers, rows)


def test_a_table_of_wide_characters_lines_up_as_a_terminal_shows_it():
    # a category in Japanese is two columns per character on a terminal; the verdicts still line up
    rows = [["accuracy_by_category.請求", "0.9", "better"], ["accuracy_by_category.billing", "0.8", "worse"]]
    text = table(rows, ["Metric", "HEAD", ""], ("left", "right", "left"))
    assert text == tabulate(rows, headers=["Metric", "HEAD", ""], tablefmt="simple", disable_numparse=True,
                            colalign=("left", "right", "left"))
    import wcwidth

    lines = text.splitlines()
    assert len({wcwidth.wcswidth(line[:line.rindex("0.")]) for line in lines[2:]}) == 1


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
    assert result.stderr == (f"Error: {gm_repo / 'params.yaml'}: gate.tolerances is not a gate setting; did you mean "
                             "'tolerance'? (known: quality_tolerance, timing_tolerance, psi_alert, review_tolerance, "
                             "review_min_n, require_review, tolerance, accept)\n")
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


def test_gate_prints_enough_digits_to_show_why_a_row_fails():
    from gitmodel.cli.gate import _gate_rows
    from gitmodel.gatepolicy import GatePolicy, Tolerance
    from gitmodel.gaterules import gate

    # 10 % of 11.7 is 1.17; the candidate is worse by 1.1700001: six decimals would print both as 1.17
    report = gate({"output_tokens": {"mean": 11.7}}, {"output_tokens": {"mean": 12.8700001}},
                  GatePolicy.parse({"tolerance": {"output_tokens.mean": Tolerance(relative=0.1)}}))
    row = _gate_rows(report)[0]
    assert row == ["output_tokens.mean", "11.7", "12.87", "+1.1700001",
                   "within ±10 % (worse by 1.1700001 > 1.17 allowed)", "fail"]
    md = _gate_rows(report, md=True)[0]
    assert md[3:] == ["+1.1700001", "within ±10 % (worse by 1.1700001 &gt; 1.17 allowed)", "❌ fail"]


def test_eval_prints_the_stored_values():
    from gitmodel.cli.evaluation import _headline

    line = _headline({"metrics": {"n": 100, "accuracy": 0.84, "output_tokens": {"mean": 0.87},
                                  "refusal_rate": 0.012345, "latency_ms": {"p50": 0.209807}}})
    assert line == "n=100  accuracy=0.84  refusal_rate=0.012345  output_tokens.mean=0.87"


def test_gate_a_misspelt_model_or_evalset_says_did_you_mean(runner, released):
    git(released, "tag", "-a", "sentiment#prod#1", "-m", "Assigning stage prod to artifact sentiment version v1.0.0",
        "sentiment@v1.0.0^{commit}")
    result = runner.invoke(cli, ["gate", "sentimnt"])
    assert (result.exit_code, result.stdout) == (3, "")
    assert result.stderr == ("Error: unknown model 'sentimnt': did you mean 'sentiment'?\n"
                             "  hint: check the spelling (`git model status` lists the models)\n")
    result = runner.invoke(cli, ["gate", "sentiment", "--evalset", "sentimen"])
    assert (result.exit_code, result.stdout) == (3, "")
    assert result.stderr == ("Error: unknown eval set 'sentimen': did you mean 'sentiment'?\n"
                             "  hint: check the spelling (the eval sets are evalsets/<name>.jsonl)\n")


@pytest.mark.parametrize("section, error", [
    ("gate:\n  tolerance: {acuracy: 0.5}\n",
     "gate.tolerance.acuracy: no metric of the results is 'acuracy'; did you mean 'accuracy'?"),
    ("gate:\n  accept: [{metric: acuracy, max_regression: 0.1, rationale: why}]\n",
     "gate.accept[0]: metric 'acuracy' is not a metric of the results; did you mean 'accuracy'?"),
    ("gate:\n  tolerance: {accuracy: {absolute: 0.1, relativ: 0.2}}\n",
     "gate.tolerance.accuracy: unknown key 'relativ' (a tolerance has absolute, relative; did you mean 'relative'?)"),
])
def test_gate_and_diff_refuse_a_misspelt_policy_key(runner, released, section, error):
    git(released, "tag", "-a", "sentiment#prod#1", "-m", "Assigning stage prod to artifact sentiment version v1.0.0",
        "sentiment@v1.0.0^{commit}")
    from ruamel.yaml import YAML

    yaml = YAML(typ="safe", pure=True)
    data = yaml.load((released / "params.yaml").read_text())
    data["gate"] = yaml.load(section)["gate"]
    with open(released / "params.yaml", "w") as f:
        yaml.dump(data, f)
    for argv in (["gate", "sentiment"], ["diff", "sentiment@v1.0.0", "sentiment@v1.2.0", "--md"]):
        result = runner.invoke(cli, argv)
        assert (result.exit_code, result.stdout) == (3, ""), argv
        assert result.stderr.startswith(f"Error: {released / 'params.yaml'}: {error}\n"), argv


@pytest.mark.parametrize("argv", [
    ["diff", "HEAD~1", "HEAD", "--model", "sentimnt"], ["diff", "HEAD~1", "HEAD", "--evalset", "sentimen"],
    ["gate", "sentimnt"], ["gate", "sentiment", "--evalset", "sentimen"],
    ["eval", "sentimnt", "--evalset", "sentiment"], ["eval", "sentiment", "--evalset", "sentimen"],
    ["verify", "sentimnt"], ["verify", "sentiment", "--evalset", "sentimen"],
    ["show", "sentimnt@v1.0.0"], ["log", "sentimnt"], ["status", "sentimnt"],
    ["plot", "sentimnt", "-o", "history.json"], ["plot", "sentiment", "--evalset", "sentimen", "-o", "history.json"],
    ["release", "sentimnt", "v9.0.0"], ["promote", "sentimnt", "v1.0.0", "--stage", "prod"],
    ["rollback", "sentimnt", "--no-commit"],
])
def test_every_command_names_the_closest_model_or_eval_set(runner, released, argv):
    git(released, "tag", "-a", "sentiment#prod#1", "-m", "Assigning stage prod to artifact sentiment version v1.0.0",
        "sentiment@v1.0.0^{commit}")
    result = runner.invoke(cli, argv, prog_name="git model")
    assert (result.exit_code, result.stdout) == (3, ""), result.stderr
    assert "did you mean" in result.stderr and "sentiment" in result.stderr.split("did you mean", 1)[1]
