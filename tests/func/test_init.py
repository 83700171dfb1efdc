"""`git model init` on real git repositories: the layout, staging without committing, idempotence,
a user's own dvc.yaml kept, and DVC reading what init wrote."""
from __future__ import annotations

import subprocess

import pytest
from ruamel.yaml import YAML

from gitmodel.cli import cli
from conftest import git, snapshot_tree, status_porcelain

CREATED = [".dvc/config", ".dvc/.gitignore", ".dvcignore", "dvc.yaml", "params.yaml",
           "models/.gitkeep", "evalsets/.gitkeep", "metrics/.gitkeep"]
EVAL_CMD = "git model eval ${item.model} --evalset ${item.evalset}"


def load_yaml(path):
    return YAML(typ="safe", pure=True).load(path.read_text("utf-8"))


def head(repo) -> str:
    return git(repo, "rev-parse", "HEAD").strip()


def dvc_stage_names(repo) -> list[str]:
    """The stages DVC itself reads from the repository (its Python API, as `dvc stage list` does)."""
    from dvc.repo import Repo

    with Repo(str(repo)) as dvc_repo:
        return sorted(stage.addressing for stage in dvc_repo.index.stages)


def test_init_outside_a_git_work_tree_is_refused(runner, tmp_path, monkeypatch):
    plain = tmp_path / "plain"
    plain.mkdir()
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path))
    monkeypatch.chdir(plain)
    result = runner.invoke(cli, ["init"])
    assert result.exit_code == 3
    assert result.stderr == (f"Error: {plain} is not inside a git work tree\n"
                             "  hint: run `git init` first, or cd into your repository\n")
    assert result.stdout == ""
    assert list(plain.iterdir()) == []


def test_init_creates_the_layout_and_stages_it_without_committing(runner, git_repo):
    before = head(git_repo)
    result = runner.invoke(cli, ["init"])
    assert result.exit_code == 0, result.stderr
    assert result.stdout.splitlines()[0] == f"Initialized git-model in {git_repo}"
    for path in CREATED:
        assert f"  + {path}\n" in result.stdout
    assert "Staged with git add" in result.stdout

    assert (git_repo / ".dvc").is_dir() and (git_repo / ".dvc" / "config").is_file()
    for folder in ("models", "evalsets", "metrics"):
        assert (git_repo / folder).is_dir()

    dvc_yaml = load_yaml(git_repo / "dvc.yaml")
    assert dvc_yaml["artifacts"] == {}
    stage = dvc_yaml["stages"]["eval"]
    assert stage["foreach"] == {}
    stage = stage["do"]
    assert stage["cmd"] == EVAL_CMD
    assert stage["deps"] == ["models/${item.model}.gguf", "evalsets/${item.evalset}.jsonl"]
    assert "eval" not in stage["params"] and "eval.openai.timeout" not in stage["params"]
    assert stage["params"][-1] == "eval.evalsets.${item.evalset}"
    assert stage["metrics"] == [{"metrics/${item.model}/${item.evalset}.json": {"cache": False}}]
    assert stage["outs"] == [{"metrics/${item.model}/${item.evalset}.outputs.jsonl": {"cache": False}}]

    eval_params = load_yaml(git_repo / "params.yaml")["eval"]
    assert eval_params["temperature"] == 0
    assert eval_params["seed"] == 0
    assert isinstance(eval_params["max_tokens"], int) and eval_params["max_tokens"] > 0
    assert isinstance(eval_params["n_ctx"], int) and eval_params["n_ctx"] > 0
    # the defaults are documented where the user edits them
    text = (git_repo / "params.yaml").read_text()
    for key in ("temperature", "seed", "max_tokens", "n_ctx", "max_line_bytes"):
        line = next(line for line in text.splitlines() if line.strip().startswith(f"{key}:"))
        assert "#" in line, f"params.yaml: {key} has no comment"

    # staged, not committed
    assert status_porcelain(git_repo).splitlines() == sorted(f"A  {p}" for p in CREATED)
    assert head(git_repo) == before
    assert git(git_repo, "rev-list", "--count", "HEAD").strip() == "1"

    # DVC reads the result: no pairs is no stage yet, and no error
    assert dvc_stage_names(git_repo) == []


@pytest.mark.slow
def test_dvc_stage_list_reads_the_eval_pairs(git_repo):
    from gitmodel import project

    project.init(git_repo)
    data = YAML()
    doc = data.load((git_repo / "dvc.yaml").read_text())
    doc["stages"]["eval"]["foreach"]["chat-support"] = {"model": "chat", "evalset": "support"}
    doc["stages"]["eval"]["foreach"]["chat-billing"] = {"model": "chat", "evalset": "billing"}
    with open(git_repo / "dvc.yaml", "w") as f:
        data.dump(doc, f)
    proc = subprocess.run(["dvc", "stage", "list", "--name-only"], cwd=git_repo, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["eval@chat-support", "eval@chat-billing"]
    assert dvc_stage_names(git_repo) == ["eval@chat-billing", "eval@chat-support"]


@pytest.mark.parametrize("committed", [True, False], ids=["after-commit", "right-after-init"])
def test_second_init_changes_nothing_and_says_so(runner, git_repo, committed):
    assert runner.invoke(cli, ["init"]).exit_code == 0
    if committed:
        git(git_repo, "commit", "-q", "-m", "git model init")
    tree, status, commit = snapshot_tree(git_repo), status_porcelain(git_repo), head(git_repo)

    result = runner.invoke(cli, ["init"])
    assert result.exit_code == 0, result.stderr
    assert result.stdout == f"git-model is already set up in {git_repo}: nothing to do.\n"
    assert snapshot_tree(git_repo) == tree
    assert status_porcelain(git_repo) == status
    assert head(git_repo) == commit


def test_second_init_json_reports_no_change(runner, gm_repo):
    import json

    result = runner.invoke(cli, ["init", "--json"])
    assert result.exit_code == 0
    assert json.loads(result.stdout) == {"root": str(gm_repo), "changed": False, "created": []}


def test_init_from_a_subfolder_sets_up_the_repository_root(runner, git_repo, monkeypatch):
    sub = git_repo / "src" / "deep"
    sub.mkdir(parents=True)
    monkeypatch.chdir(sub)
    result = runner.invoke(cli, ["init"])
    assert result.exit_code == 0, result.stderr
    assert (git_repo / "dvc.yaml").is_file() and (git_repo / "models").is_dir()
    assert not (sub / "dvc.yaml").exists() and not (sub / ".dvc").exists()


USER_DVC_YAML = """\
# my own pipeline: prepare the data before training (keep this comment)
stages:
  prepare:
    cmd: python prepare.py data/raw.csv data/clean.csv
    deps:
      - prepare.py
      - data/raw.csv
    outs:
      - data/clean.csv  # the cleaned set
"""


@pytest.mark.slow
def test_init_keeps_a_users_own_dvc_yaml(runner, git_repo):
    (git_repo / "dvc.yaml").write_text(USER_DVC_YAML)
    git(git_repo, "add", "dvc.yaml")
    git(git_repo, "commit", "-q", "-m", "my pipeline")

    result = runner.invoke(cli, ["init"])
    assert result.exit_code == 0, result.stderr
    assert "  + dvc.yaml\n" in result.stdout
    text = (git_repo / "dvc.yaml").read_text()
    assert "# my own pipeline: prepare the data before training (keep this comment)" in text
    assert "# the cleaned set" in text
    data = load_yaml(git_repo / "dvc.yaml")
    assert data["stages"]["prepare"] == load_yaml_text(USER_DVC_YAML)["stages"]["prepare"]
    assert data["stages"]["eval"]["foreach"] == {}
    assert data["stages"]["eval"]["do"]["cmd"] == EVAL_CMD
    assert data["artifacts"] == {}
    assert status_porcelain(git_repo).count("M  dvc.yaml") == 1

    assert dvc_stage_names(git_repo) == ["prepare"]
    proc = subprocess.run(["dvc", "stage", "list", "--name-only"], cwd=git_repo, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["prepare"]

    # and a second run leaves the user's file alone
    tree = snapshot_tree(git_repo)
    again = runner.invoke(cli, ["init"])
    assert again.exit_code == 0 and "nothing to do" in again.stdout
    assert snapshot_tree(git_repo) == tree


def load_yaml_text(text):
    return YAML(typ="safe", pure=True).load(text)


def test_init_keeps_an_existing_dvc_project_and_params(runner, git_repo):
    from dvc.repo import Repo

    Repo.init(str(git_repo)).close()
    (git_repo / ".dvc" / "config").write_text("[core]\n    autostage = false\n")
    (git_repo / "params.yaml").write_text("train:\n  lr: 0.1  # mine\n")
    git(git_repo, "add", "-A")
    git(git_repo, "commit", "-q", "-m", "dvc init by hand")
    config = (git_repo / ".dvc" / "config").read_bytes()

    result = runner.invoke(cli, ["init"])
    assert result.exit_code == 0, result.stderr
    assert ".dvc/config" not in result.stdout
    assert (git_repo / ".dvc" / "config").read_bytes() == config
    text = (git_repo / "params.yaml").read_text()
    assert "lr: 0.1  # mine" in text
    params = load_yaml_text(text)
    assert params["train"] == {"lr": 0.1}
    assert params["eval"]["temperature"] == 0 and params["eval"]["seed"] == 0


# -- refusals leave the repository as they found it ------------------------------------------------

NOT_THE_MATRIX = "stages:\n  eval:\n    cmd: python evaluate.py\n"
NOT_YAML = "stages: [unclosed\n"


def refuse(runner, repo, phrase):
    tree = snapshot_tree(repo)
    result = runner.invoke(cli, ["init"])
    assert result.exit_code == 3, (result.stdout, result.stderr)
    assert result.stderr.startswith("Error: ")
    assert phrase in result.stderr
    assert "Traceback" not in result.stderr
    assert result.stdout == ""
    assert snapshot_tree(repo) == tree
    assert not (repo / ".dvc").exists(), "a refused init left the DVC project it made"
    return result


def commit_dvc_yaml(repo, text):
    (repo / "dvc.yaml").write_text(text)
    git(repo, "add", "dvc.yaml")
    git(repo, "commit", "-q", "-m", "dvc.yaml")


def test_init_refuses_a_users_eval_stage_that_is_not_the_matrix(runner, git_repo):
    commit_dvc_yaml(git_repo, NOT_THE_MATRIX)
    result = refuse(runner, git_repo, f"{git_repo / 'dvc.yaml'}: stages.eval is not git-model's eval stage")
    assert "hint: rename your own `eval` stage" in result.stderr


def test_init_refuses_a_dvc_yaml_that_is_not_yaml(runner, git_repo):
    commit_dvc_yaml(git_repo, NOT_YAML)
    refuse(runner, git_repo, f"{git_repo / 'dvc.yaml'}: not valid YAML")


@pytest.mark.parametrize("text", [NOT_THE_MATRIX, NOT_YAML], ids=["eval-not-matrix", "not-yaml"])
def test_a_refused_init_leaves_the_git_index_as_it_was(runner, git_repo, text):
    commit_dvc_yaml(git_repo, text)
    status = status_porcelain(git_repo)
    assert runner.invoke(cli, ["init"]).exit_code == 3
    assert status_porcelain(git_repo) == status


def test_init_refuses_a_dvc_yaml_that_is_not_a_mapping(runner, git_repo):
    commit_dvc_yaml(git_repo, "- prepare\n- train\n")
    refuse(runner, git_repo, f"{git_repo / 'dvc.yaml'}")
