"""Errors are caught once: `Error: ...` and a hint on stderr, exit 3; click's usage errors exit 2;
`--traceback` lets the exception through."""
from __future__ import annotations

import shutil
import subprocess
import traceback

import pytest

from gitmodel.cli import cli
from gitmodel.errors import GitModelError, InvalidName

# A name taken from the file stem is not an option value: the core refuses it (exit 3).
BAD_NAME = ["add", "models/Bad_Name.gguf"]
BAD_NAME_MESSAGE = (
    "Error: invalid model name 'Bad_Name': use lowercase letters, digits and '-', "
    "starting and ending with a letter or digit (e.g. 'chat' or 'fraud-v2')\n"
    "  hint: pass --name with a valid model name\n"
)


@pytest.fixture
def model_repo(gm_repo, demo_dir):
    for name in ("x", "Bad_Name"):
        (gm_repo / "models" / f"{name}.gguf").write_bytes((demo_dir / "sentiment-v1.gguf").read_bytes())
    return gm_repo


def test_error_is_one_message_on_stderr_and_exit_3(runner, model_repo):
    result = runner.invoke(cli, BAD_NAME)
    assert result.exit_code == 3
    assert result.stderr == BAD_NAME_MESSAGE
    assert result.stdout == ""
    assert "Traceback" not in result.stderr


def test_error_inside_a_subgroup_is_caught_by_the_same_handler(runner, gm_repo):
    (gm_repo / "evalsets" / "x.jsonl").write_text("not json\n")
    result = runner.invoke(cli, ["evalset", "add", "evalsets/x.jsonl"])
    assert result.exit_code == 3
    assert result.stderr.startswith("Error: ")
    assert "x.jsonl:1: malformed JSON" in result.stderr
    assert "Traceback" not in result.stderr


def test_traceback_flag_lets_the_exception_through(runner, model_repo):
    result = runner.invoke(cli, ["--traceback", *BAD_NAME])
    assert isinstance(result.exception, InvalidName)
    assert result.exit_code != 3
    assert "Error: invalid model name" not in result.stderr
    trace = "".join(traceback.format_exception(*result.exc_info))
    assert "Traceback (most recent call last)" in trace
    assert "check_name" in trace            # the frame that raised


def test_traceback_flag_in_a_real_process(model_repo):
    exe = shutil.which("git-model")
    plain = subprocess.run([exe, *BAD_NAME], capture_output=True, text=True, cwd=model_repo)
    assert plain.returncode == 3
    assert plain.stderr == BAD_NAME_MESSAGE
    assert "Traceback" not in plain.stderr

    traced = subprocess.run([exe, "--traceback", *BAD_NAME], capture_output=True, text=True, cwd=model_repo)
    assert traced.returncode != 0
    assert "Traceback (most recent call last)" in traced.stderr
    assert "gitmodel.errors.InvalidName: invalid model name 'Bad_Name'" in traced.stderr


def test_error_outside_a_git_repository_exits_3_without_traceback(runner, tmp_path, monkeypatch):
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path))
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(cli, ["add", "models/x.gguf"])
    assert result.exit_code == 3
    assert result.stderr == (f"Error: {tmp_path} is not inside a git work tree\n"
                             "  hint: run `git init` first, or cd into your repository\n")


@pytest.mark.parametrize("argv, phrase", [
    (["add"], "Error: Missing argument 'PATH'."),
    (["add", "models/x.gguf", "--bogus"], "Error: No such option '--bogus'."),
    (["add", "models/x.gguf", "--name"], "Error: Option '--name' requires an argument."),
    (["evalset"], "Usage: git model evalset"),
    (["evalset", "add"], "Error: Missing argument 'PATH'."),
    (["nonsense"], "Error: No such command 'nonsense'."),
])
def test_usage_errors_exit_2(runner, gm_repo, argv, phrase):
    before = (gm_repo / "dvc.yaml").read_bytes()
    result = runner.invoke(cli, argv, prog_name="git model")
    assert result.exit_code == 2, (result.stdout, result.stderr)
    assert phrase in result.stderr
    assert "Traceback" not in result.stderr
    assert (gm_repo / "dvc.yaml").read_bytes() == before


def test_every_error_class_defaults_to_exit_3():
    def subclasses(cls):
        for sub in cls.__subclasses__():
            yield sub
            yield from subclasses(sub)

    assert GitModelError.exit_code == 3
    for cls in subclasses(GitModelError):
        assert cls.exit_code in (1, 3), cls


# -- usage errors: every hint says `-h` (git reads `git model --help` itself and opens a manual page) --


def test_usage_errors_point_at_dash_h(runner, gm_repo):
    result = runner.invoke(cli, ["add"], prog_name="git model")
    assert result.exit_code == 2
    assert "Try 'git model add -h' for help." in result.stderr
    assert "--help" not in result.stderr
    result = runner.invoke(cli, ["nonsense"], prog_name="git model")
    assert "Try 'git model -h' for help." in result.stderr


def test_usage_error_of_a_real_git_model_process_points_at_dash_h(gm_repo):
    proc = subprocess.run(["git", "model", "release", "sentiment", "1.x"], capture_output=True, text=True,
                          cwd=gm_repo)
    assert proc.returncode == 2
    assert proc.stderr == (
        "Usage: git model release [OPTIONS] MODEL VERSION\n"
        "Try 'git model release -h' for help.\n\n"
        "Error: Invalid value for 'VERSION': invalid version '1.x': expected SemVer like v1.2.0 (or v1.2.0-rc.1)\n")
    # and what the hint says works
    shown = subprocess.run(["git", "model", "release", "-h"], capture_output=True, text=True, cwd=gm_repo)
    assert shown.returncode == 0 and shown.stdout.startswith("Usage: git model release")


# -- invalid names, versions, stages, fractions and waits are usage errors (exit 2) -------------------

INVALID = {
    "release-version": (["release", "sentiment", "1.x"], "Invalid value for 'VERSION': invalid version '1.x'"),
    "release-name": (["release", "Sentiment", "v1.0.0"], "Invalid value for 'MODEL': invalid model name 'Sentiment'"),
    "promote-version": (["promote", "sentiment", "v1", "--stage", "prod"], "invalid version 'v1'"),
    "promote-stage": (["promote", "sentiment", "v1.0.0", "--stage", "Prod!"],
                      "Invalid value for '--stage' / '-s': invalid stage name 'Prod!'"),
    "promote-fraction-above-1": (["promote", "sentiment", "v1.0.0", "--stage", "canary", "--fraction", "1.5"],
                                 "Invalid value for '--fraction': 1.5 is not a fraction with 0 < F <= 1"),
    "promote-fraction-zero": (["promote", "sentiment", "v1.0.0", "--stage", "canary", "--fraction", "0"],
                              "0 is not a fraction with 0 < F <= 1"),
    "promote-fraction-nan": (["promote", "sentiment", "v1.0.0", "--stage", "canary", "--fraction", "nan"],
                             "nan is not a fraction with 0 < F <= 1"),
    "promote-fraction-text": (["promote", "sentiment", "v1.0.0", "--stage", "canary", "--fraction", "half"],
                              "'half' is not a number"),
    "promote-wait-negative": (["promote", "sentiment", "v1.0.0", "--stage", "prod", "--wait", "-5"],
                              "Invalid value for '--wait': -5 is not a number of seconds >= 0"),
    "rollback-wait-negative": (["rollback", "sentiment", "--wait", "-5"], "-5 is not a number of seconds >= 0"),
    "eval-wait-negative": (["eval", "sentiment", "-e", "x", "--wait", "-5"], "-5 is not a number of seconds >= 0"),
    "release-wait-negative": (["release", "sentiment", "v1.0.0", "--wait", "-5"], "-5 is not a number of seconds >= 0"),
    "log-name": (["log", "a_b"], "Invalid value for '[MODEL]': invalid model name 'a_b'"),
    "status-name": (["status", "x-"], "invalid model name 'x-'"),
    "plot-name": (["plot", "UP"], "invalid model name 'UP'"),
    "plot-evalset": (["plot", "sentiment", "-e", "a b"], "invalid eval set name 'a b'"),
    "gate-name": (["gate", "x_y"], "invalid model name 'x_y'"),
    "gate-evalset": (["gate", "sentiment", "--evalset", "E"], "invalid eval set name 'E'"),
    "diff-model": (["diff", "--model", "M"], "invalid model name 'M'"),
    "verify-name": (["verify", "V"], "invalid model name 'V'"),
    "evalset-add-name": (["evalset", "add", "evalsets/x.jsonl", "--name", "X"], "invalid eval set name 'X'"),
    "name-unescaped": (["add", "models/x.gguf", "--name", "modèle"], "invalid model name 'modèle'"),
}


@pytest.mark.parametrize("case", list(INVALID), ids=list(INVALID))
def test_invalid_grammar_is_a_usage_error(runner, gm_repo, case):
    argv, phrase = INVALID[case]
    before = subprocess.run(["git", "status", "--porcelain"], cwd=gm_repo, capture_output=True, text=True).stdout
    result = runner.invoke(cli, argv, prog_name="git model")
    assert result.exit_code == 2, (result.stdout, result.stderr)
    assert phrase in result.stderr, result.stderr
    assert f"Try 'git model {argv[0]}" in result.stderr
    assert "\\x" not in result.stderr and "Traceback" not in result.stderr
    assert subprocess.run(["git", "status", "--porcelain"], cwd=gm_repo, capture_output=True,
                          text=True).stdout == before


def test_a_name_from_a_file_stem_is_shown_as_typed(runner, gm_repo, demo_dir):
    (gm_repo / "models" / "modèle.gguf").write_bytes((demo_dir / "sentiment-v1.gguf").read_bytes())
    result = runner.invoke(cli, ["add", "models/modèle.gguf"])
    assert result.exit_code == 3
    assert result.stderr.startswith("Error: invalid model name 'modèle': use lowercase letters")


# -- hints: every error with a way out names it --------------------------------------------------------


def test_errors_with_a_generic_way_out_carry_a_hint():
    from gitmodel.errors import InvalidEvalSet, InvalidMetrics

    assert "git model evalset add" in InvalidEvalSet("evalsets/x.jsonl", 3, "bad").hint
    assert "git model eval" in InvalidMetrics("metrics/m/e.json: broken").hint
    assert InvalidMetrics("x", hint="specific").hint == "specific"
