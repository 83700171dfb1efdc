"""promote / rollback / status at the command line: exit codes and exact messages (stderr apart)."""
from __future__ import annotations

import json

import pytest

from gitmodel.cli import cli
from tests.conftest import git, snapshot_tree

MODEL = "sentiment"


def invoke(runner, *args: str):
    return runner.invoke(cli, list(args), prog_name="git model")


def tags(repo) -> list[str]:
    return git(repo, "tag", "-l").split()


def assert_error(result, *lines: str, code: int = 3) -> None:
    assert result.exit_code == code, (result.stdout, result.stderr)
    assert result.stderr.splitlines() == list(lines)
    assert result.stdout == ""


@pytest.mark.parametrize("args, lines", [
    (["--stage", "canary"], ["Error: promotion to canary needs --fraction: the share of traffic the canary serves",
                             "  hint: e.g. --fraction 0.1 for 10 % of requests"]),
    (["--stage", "prod", "--fraction", "0.5"],
     ["Error: --fraction does not apply to prod: prod serves the traffic the other stages do not",
      "  hint: use --stage canary --fraction F to serve a share of traffic"]),
    (["--stage", "prod", "--accept-risk", "  "],
     ["Error: --accept-risk needs a rationale: why this risk is acceptable, in words",
      '  hint: e.g. --accept-risk "latency regression accepted for the new tokenizer (JIRA-12)"']),
    (["--stage", "prod", "--accept-risk", "ok\x1b[2J"],
     ["Error: the --accept-risk rationale holds control characters ('\\x1b')",
      "  hint: write it as plain text"]),
])
def test_promote_refusals_before_anything_is_written(released, runner, args, lines):
    before, files = tags(released), snapshot_tree(released)
    assert_error(invoke(runner, "promote", MODEL, "v1.0.0", *args), *lines)
    assert tags(released) == before and snapshot_tree(released) == files


@pytest.mark.parametrize("args, line", [
    (["--stage", "canary", "--fraction", "0"], "Error: Invalid value for '--fraction': 0 is not a fraction with 0 < F <= 1"),
    (["--stage", "canary", "--fraction", "1.5"],
     "Error: Invalid value for '--fraction': 1.5 is not a fraction with 0 < F <= 1"),
    (["--stage", "Prod"],
     ("Error: Invalid value for '--stage' / '-s': invalid stage name 'Prod': use lowercase letters, digits and '-', "
      "starting and ending with a letter or digit (e.g. 'chat' or 'fraud-v2')")),
])
def test_promote_usage_errors_before_anything_is_written(released, runner, args, line):
    before, files = tags(released), snapshot_tree(released)
    result = invoke(runner, "promote", MODEL, "v1.0.0", *args)
    assert result.exit_code == 2 and result.stderr.splitlines()[-1] == line, result.stderr
    assert tags(released) == before and snapshot_tree(released) == files


def test_promote_needs_a_stage(released, runner):
    result = invoke(runner, "promote", MODEL, "v1.0.0")
    assert result.exit_code == 2
    assert "Error: Missing option '--stage' / '-s'." in result.stderr


def test_promote_an_invalid_version(released, runner):
    result = invoke(runner, "promote", MODEL, "1.2", "--stage", "prod")
    assert result.exit_code == 2
    assert result.stderr.splitlines()[-1] == ("Error: Invalid value for 'VERSION': invalid version '1.2': "
                                              "expected SemVer like v1.2.0 (or v1.2.0-rc.1)")


def test_promote_json(released, runner):
    result = invoke(runner, "promote", MODEL, "v1.0.0", "--stage", "canary", "--fraction", "0.1", "--json")
    assert result.exit_code == 0, result.stderr
    doc = json.loads(result.stdout)
    assert doc["tag"] == "sentiment#canary#1" and doc["fraction"] == 0.1 and doc["refused"] is False
    assert doc["gate"]["status"] == "none"
    assert doc["message"].splitlines()[0] == "Assigning stage canary to artifact sentiment version v1.0.0"


def test_promote_refused_by_the_gate_exits_1_also_with_json(released, runner):
    assert invoke(runner, "promote", MODEL, "v1.2.0", "--stage", "prod").exit_code == 0
    result = invoke(runner, "promote", MODEL, "v1.10.0", "--stage", "prod", "--json")
    assert result.exit_code == 1
    doc = json.loads(result.stdout)
    assert doc["refused"] is True and doc["tag"] is None and doc["gate"]["status"] == "failed"
    assert doc["gate"]["results"][0]["passed"] is False


def test_rollback_of_an_unknown_version(released, runner):
    assert_error(invoke(runner, "rollback", MODEL, "--to", "v3.0.0"),
                 "Error: release sentiment@v3.0.0 does not exist; releases of sentiment: v1.0.0, v1.2.0, v1.10.0")


def test_rollback_of_an_unknown_model(released, runner):
    assert_error(invoke(runner, "rollback", "chat", "--to", "v1.0.0"),
                 "Error: model 'chat' has no releases",
                 "  hint: release one first: git model release chat v1.0.0")


def test_rollback_rejects_a_bad_model_name(released, runner):
    result = invoke(runner, "rollback", "../etc")
    assert result.exit_code == 2
    assert "Error: Invalid value for 'MODEL': invalid model name '../etc': " in result.stderr


def test_commands_outside_a_git_model_repository(git_repo, runner):
    for args in (["status"], ["rollback", MODEL], ["promote", MODEL, "v1.0.0", "--stage", "prod"]):
        result = invoke(runner, *args)
        assert result.exit_code == 3
        assert result.stderr.splitlines() == [
            f"Error: {git_repo} is not a git-model repository (no dvc.yaml or .dvc/)",
            "  hint: run `git model init` first"]


def test_status_of_an_empty_registry(gm_repo, runner):
    result = invoke(runner, "status")
    assert result.exit_code == 0
    assert result.stdout == "No models yet. Track one with: git model add models/<name>.gguf\n"
    assert json.loads(invoke(runner, "status", "--json").stdout) == {"models": []}


@pytest.mark.parametrize("command", ["promote", "rollback", "status"])
def test_help_ends_with_examples_of_the_command(runner, command):
    result = invoke(runner, command, "--help")
    assert result.exit_code == 0
    lines = result.stdout.rstrip().splitlines()
    examples = lines[[i for i, line in enumerate(lines) if line.strip().startswith("Example")][-1] + 1:]
    examples = [line for line in examples if line.strip() and not line.lstrip().startswith("-")]
    assert examples and all(line.strip().startswith(f"git model {command}") for line in examples[:1])
