"""Per model settings (``eval.models.<name>``) with real git and DVC: each pair depends on its model's
section, an existing repository upgrades with nothing re-run, and the merged settings are recorded."""
from __future__ import annotations

import json

import pytest
from ruamel.yaml import YAML

from conftest import git
from test_pairs import dvc_stale, gm, gm_ok, repro, status_stale, two_models  # noqa: F401  (a fixture)

pytestmark = pytest.mark.slow


def set_model_override(repo, model, text):
    params = repo / "params.yaml"
    before = params.read_text()
    assert f"    {model}: {{}}\n" in before
    params.write_text(before.replace(f"    {model}: {{}}\n", f"    {model}: {text}\n", 1))


def recorded(repo, model, evalset) -> dict:
    return json.loads((repo / "metrics" / model / f"{evalset}.json").read_text())["params"]


def make_old(repo):
    """The repository as git-model wrote it before per model settings: no `eval.models.${item.model}`
    in the stage, no `eval.models` in params.yaml."""
    yaml = YAML()
    data = yaml.load((repo / "dvc.yaml").read_text())
    data["stages"]["eval"]["do"]["params"].remove("eval.models.${item.model}")
    with open(repo / "dvc.yaml", "w") as f:
        yaml.dump(data, f)
    params = repo / "params.yaml"
    doc = yaml.load(params.read_text())
    del doc["eval"]["models"]
    with open(params, "w") as f:
        yaml.dump(doc, f)


def test_add_writes_each_models_empty_section(two_models):
    data = YAML(typ="safe").load((two_models / "params.yaml").read_text())
    assert data["eval"]["models"] == {"a": {}, "b": {}}
    stage = YAML(typ="safe").load((two_models / "dvc.yaml").read_text())["stages"]["eval"]
    assert "eval.models.${item.model}" in stage["do"]["params"]


def test_an_old_repository_upgrades_with_nothing_rerun_then_a_models_override_reruns_its_pairs(two_models):
    repo = two_models
    make_old(repo)
    assert repro(repo) == ["eval@a-x", "eval@a-y", "eval@b-z"]
    lock = YAML(typ="safe").load((repo / "dvc.lock").read_text())
    assert "eval.models.a" not in lock["stages"]["eval@a-x"]["params"]["params.yaml"]
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "evaluated before per model settings")

    result = gm_ok("init")
    for path in ("dvc.yaml", "params.yaml", "dvc.lock"):
        assert f"  + {path}\n" in result.stdout
    lock = YAML(typ="safe").load((repo / "dvc.lock").read_text())
    assert lock["stages"]["eval@a-x"]["params"]["params.yaml"]["eval.models.a"] == {}
    assert lock["stages"]["eval@b-z"]["params"]["params.yaml"]["eval.models.b"] == {}
    assert dvc_stale(repo) == status_stale(repo) == []
    assert repro(repo) == []
    assert gm_ok("init").stdout.startswith("git-model is already set up")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "upgraded")

    # one model's override re-runs that model's pairs only, and the eval set's own setting wins over it
    set_model_override(repo, "a", "{max_tokens: 8}")
    set_override = (repo / "params.yaml").read_text().replace("    x: {}\n", "    x: {max_tokens: 12}\n", 1)
    (repo / "params.yaml").write_text(set_override)
    assert dvc_stale(repo) == status_stale(repo) == ["eval@a-x", "eval@a-y"]
    assert repro(repo) == ["eval@a-x", "eval@a-y"]
    assert dvc_stale(repo) == status_stale(repo) == []
    assert recorded(repo, "a", "x")["max_tokens"] == 12
    assert recorded(repo, "a", "y")["max_tokens"] == 8
    assert recorded(repo, "b", "z")["max_tokens"] == 64
    # the recorded settings are the merged ones: verify re-runs the result with them and agrees
    verify = gm("verify", "a", "--evalset", "y")
    assert verify.exit_code == 0, verify.stdout + verify.stderr


def test_an_override_for_an_untracked_model_is_refused_naming_the_key(two_models):
    params = two_models / "params.yaml"
    params.write_text(params.read_text().replace("    a: {}\n", "    a: {}\n    aa: {max_tokens: 8}\n", 1))
    result = gm("eval", "a", "--evalset", "x")
    assert result.exit_code == 3
    assert "eval.models.aa" in result.stderr and "did you mean 'a'?" in result.stderr
    assert not (two_models / "metrics" / "a" / "x.json").exists()


def test_serving_without_stored_results_runs_with_the_models_own_settings(two_models, monkeypatch):
    from gitmodel import serving

    set_model_override(two_models, "a", "{n_ctx: 1024, max_tokens: 8}")
    monkeypatch.chdir(two_models)
    arm = serving.Arm("prod", "v9.9.9", "0" * 32, "a@v9.9.9")   # no release: no stored results to follow
    settings, _ = serving.Deployment("a", two_models)._settings(arm)
    assert (settings.n_ctx, settings.max_tokens) == (1024, 8)
    settings, _ = serving.Deployment("b", two_models)._settings(arm)
    assert (settings.n_ctx, settings.max_tokens) == (2048, 64)


def test_pairing_in_an_old_repository_upgrades_it_as_init_does_and_runs_only_the_new_pair(two_models):
    repo = two_models
    make_old(repo)
    assert repro(repo) == ["eval@a-x", "eval@a-y", "eval@b-z"]
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "evaluated before per model settings")
    result = gm_ok("evalset", "add", "evalsets/x.jsonl", "--for", "b")
    assert "dvc.lock" in result.stdout
    assert YAML(typ="safe").load((repo / "params.yaml").read_text())["eval"]["models"] == {"a": {}, "b": {}}
    assert dvc_stale(repo) == status_stale(repo) == ["eval@b-x"]
    assert repro(repo) == ["eval@b-x"]
