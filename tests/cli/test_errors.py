"""Errors are caught once: `Error: ...` and a hint on stderr, exit 3; click's usage errors exit 2;
`--traceback` lets the exception through."""
from __future__ import annotations

import shutil
import subprocess
import traceback

import pytest

from gitmodel.cli import cli
from gitmodel.errors import GitModelError, InvalidName

BAD_NAME = ["add", "models/x.gguf", "--name", "Bad_Name"]
BAD_NAME_MESSAGE = (
    "Error: invalid model name 'Bad_Name': use lowercase letters, digits and '-', "
    "starting and ending with a letter or digit (e.g. 'chat' or 'fraud-v2')\n"
    "  hint: pass --name with a valid model name\n"
)


@pytest.fixture
def model_repo(gm_repo, demo_dir):
    (gm_repo / "models" / "x.gguf").write_bytes((demo_dir / "sentiment-v1.gguf").read_bytes())
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
