"""bisect on a real history: the demo v2 weights released, then commits that change nothing, that add
a harmless bias (0.5: no example flips), the bias that breaks the `not nice` reviews (0.8), and v3
(1.3) released. Checkpoints are evaluated by llama.cpp from the DVC cache, never checked out."""
from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import pytest

from gitmodel import bisect, store
from gitmodel.errors import GitModelError
from tests.conftest import _isolate_env, git, snapshot_tree, status_porcelain
from tests.func.stagekit import MODEL_PATH, gm, gm_ok, tracked_md5

BROKEN = "r0147"     # v2 margin -0.75: a bias of 0.8 turns it positive, 0.5 does not


def _checkpoint_with_bias(path: Path, bias: float) -> None:
    from gitmodel.demo import model

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(model, "V3_POSITIVE_BIAS", bias)
        model.write_checkpoint("v3", path)


def _make_history(path: Path, demo: Path) -> dict[str, str]:
    path.mkdir()
    git(path, "init", "-q")
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(path)
        gm_ok("init")
        git(path, "commit", "-q", "-m", "git model init")
        shutil.copy(demo / "sentiment.jsonl", path / "evalsets" / "sentiment.jsonl")
        gm_ok("evalset", "add", "evalsets/sentiment.jsonl")
        commits = {}

        def commit(name: str, message: str) -> None:
            git(path, "add", "-A")
            git(path, "commit", "-q", "-m", message)
            commits[name] = git(path, "rev-parse", "HEAD").strip()

        shutil.copy(demo / "sentiment-v2.gguf", path / MODEL_PATH)
        gm_ok("add", MODEL_PATH, "--base-model", "demo-base", "--param", "epochs=2")
        gm_ok("eval", "sentiment", "--evalset", "sentiment")
        commit("v2", "sentiment: the demo v2 weights")
        gm_ok("release", "sentiment", "v1.0.0")
        (path / "NOTES.md").write_text("notes\n")
        commit("notes", "notes, no checkpoint change")
        for name, bias, epochs in (("bias05", 0.5, 3), ("bias08", 0.8, 4)):
            _checkpoint_with_bias(path / MODEL_PATH, bias)
            gm_ok("add", MODEL_PATH, "--base-model", "demo-base", "--param", f"epochs={epochs}")
            commit(name, f"sentiment with a positive bias of {bias} (not evaluated)")
        (path / "NOTES.md").write_text("more notes\n")
        commit("notes2", "more notes")
        shutil.copy(demo / "sentiment-v3.gguf", path / MODEL_PATH)
        gm_ok("add", MODEL_PATH, "--base-model", "demo-base", "--param", "epochs=5")
        gm_ok("eval", "sentiment", "--evalset", "sentiment")
        commit("v3", "sentiment: the demo v3 weights")
        gm_ok("release", "sentiment", "v1.1.0")
    (path.parent / "commits.json").write_text(json.dumps(commits))
    return commits


@pytest.fixture(scope="module")
def history_template(tmp_path_factory, demo_dir) -> Path:
    with pytest.MonkeyPatch.context() as mp:
        _isolate_env(mp, tmp_path_factory.mktemp("bisect-home"), identity=("Test", "t@example.com"))
        repo = tmp_path_factory.mktemp("bisect") / "repo"
        _make_history(repo, demo_dir)
        return repo


@pytest.fixture
def history(history_template, tmp_path, monkeypatch) -> tuple[Path, dict[str, str]]:
    repo = tmp_path / "history"
    shutil.copytree(history_template, repo, symlinks=True)
    monkeypatch.chdir(repo)
    return repo, json.loads((history_template.parent / "commits.json").read_text())


def test_bisect_finds_the_commit_that_broke_an_example(history):
    repo, commits = history
    before, status = snapshot_tree(repo), status_porcelain(repo)
    result = bisect.bisect(repo, "sentiment", "sentiment@v1.0.0", "sentiment@v1.1.0", example_id=BROKEN)
    assert result.candidates == [commits["bias05"], commits["bias08"], commits["v3"]]
    assert result.first_bad == commits["bias08"] and result.before == commits["bias05"]
    assert result.evaluations <= math.ceil(math.log2(len(result.candidates)))
    assert result.steps[0].commit == commits["v3"] and result.steps[0].how == "stored"
    assert {s.commit: s.bad for s in result.steps} == {commits["v3"]: True, commits["bias05"]: False,
                                                       commits["bias08"]: True}
    assert {"key": "params.epochs", "old": 3, "new": 4} in result.lineage
    assert [t.name for t in result.weights.diff.moved] == ["output.weight"]
    # nothing checked out, nothing written
    assert snapshot_tree(repo) == before and status_porcelain(repo) == status
    assert git(repo, "rev-parse", "HEAD").strip() == commits["v3"]


def test_bisect_a_metric(history):
    repo, commits = history
    # a bare version names a release of the model, as in `rollback --to`
    result = gm_ok("bisect", "sentiment", "--metric", "accuracy", "--good", "v1.0.0", "--bad", "HEAD")
    lines = result.stdout.splitlines()
    assert lines[0] == "bisect sentiment: accuracy, good v1.0.0, bad HEAD"
    assert lines[1].startswith(f"  bad   {commits['v3'][:12]}") and "stored" in lines[1]
    assert f"First bad commit: {commits['bias08']}  sentiment with a positive bias of 0.8 (not evaluated)" in lines
    assert "    params.epochs: 3 -> 4" in lines
    assert any(line.strip().startswith("moved most: output.weight (rel L2") for line in lines)
    evaluated = [line for line in lines[1:4] if " evaluated " in line]
    assert len(evaluated) == 2 and all("(good 0.9250, gate rule >= baseline - 0)" in line for line in evaluated)


def test_a_metric_good_at_bad_by_the_threshold(history):
    result = gm("bisect", "sentiment", "--metric", "accuracy", "--threshold", "0.5", "--good", "sentiment@v1.0.0",
                "--bad", "sentiment@v1.1.0")
    assert result.exit_code == 3
    assert result.stderr.startswith("Error: metric accuracy is good at sentiment@v1.1.0 (")
    assert "nothing to bisect" in result.stderr


def test_an_example_good_at_bad_is_nothing_to_bisect(history):
    repo, _ = history
    outputs = git(repo, "show", "sentiment@v1.1.0:metrics/sentiment/sentiment.outputs.jsonl").splitlines()
    fine = next(json.loads(line)["id"] for line in outputs if json.loads(line)["correct"])
    result = gm("bisect", "sentiment", fine, "--good", "sentiment@v1.0.0", "--bad", "sentiment@v1.1.0")
    assert result.exit_code == 3
    assert result.stderr.splitlines()[0] == (f"Error: example '{fine}' is good at sentiment@v1.1.0 (correct): "
                                             "nothing to bisect")


def test_good_must_be_an_ancestor_of_bad(history):
    result = gm("bisect", "sentiment", BROKEN, "--good", "sentiment@v1.1.0", "--bad", "sentiment@v1.0.0")
    assert result.exit_code == 3
    assert "is not an ancestor of sentiment@v1.0.0" in result.stderr
    assert "hint: swap --good and --bad" in result.stderr


def test_the_same_md5_at_good_and_bad_is_refused(history):
    repo, commits = history
    result = gm("bisect", "sentiment", BROKEN, "--good", "sentiment@v1.0.0", "--bad", commits["notes"])
    assert result.exit_code == 3
    md5 = tracked_md5(repo, "sentiment@v1.0.0")
    assert result.stderr.splitlines()[0] == (f"Error: sentiment@v1.0.0 and {commits['notes']} track the same "
                                             f"checkpoint of sentiment (md5 {md5}): no checkpoint change between "
                                             "them to blame")


def test_a_checkpoint_missing_everywhere_names_the_commit_and_keeps_the_progress(history):
    repo, commits = history
    md5 = tracked_md5(repo, commits["bias08"])
    store.cache_path(repo, md5).unlink()
    before = snapshot_tree(repo)
    result = gm("bisect", "sentiment", BROKEN, "--good", "sentiment@v1.0.0", "--bad", "sentiment@v1.1.0")
    assert result.exit_code == 3
    out = result.stdout.splitlines()
    assert out[1].startswith(f"  bad   {commits['v3'][:12]}") and out[2].startswith(f"  good  {commits['bias05'][:12]}")
    first = result.stderr.splitlines()[0]
    assert first == (f"Error: cannot judge commit {commits['bias08'][:12]}: its checkpoint (md5 {md5}) is in neither "
                     f"the local DVC cache nor the DVC remote; so far: good up to {commits['bias05'][:12]}, bad from "
                     f"{commits['v3'][:12]}")
    assert f"resume with --good {commits['bias05'][:12]} --bad {commits['v3'][:12]}" in result.stderr
    assert snapshot_tree(repo) == before


def test_a_checkpoint_missing_locally_is_fetched_from_the_remote(history):
    repo, commits = history
    md5 = tracked_md5(repo, commits["bias08"])
    remote = repo.parent / "remote"
    target = remote / "files" / "md5" / md5[:2] / md5[2:]
    target.parent.mkdir(parents=True)
    shutil.move(store.cache_path(repo, md5), target)
    from tests.func.stagekit import run, tool

    run(repo, tool("dvc"), "remote", "add", "--local", "-d", "storage", str(remote))
    result = gm_ok("bisect", "sentiment", BROKEN, "--good", "sentiment@v1.0.0", "--bad", "sentiment@v1.1.0",
                   "--json")
    assert json.loads(result.stdout)["first_bad"] == commits["bias08"]
    assert store.cache_path(repo, md5).is_file()


def test_good_with_stale_results_is_refused(history):
    repo, commits = history
    result = gm("bisect", "sentiment", BROKEN, "--good", commits["bias05"], "--bad", "sentiment@v1.1.0")
    assert result.exit_code == 3
    assert result.stderr.startswith(f"Error: the results of sentiment on sentiment stored at {commits['bias05']} "
                                    f"were computed on md5 {tracked_md5(repo, 'sentiment@v1.0.0')}, not on the "
                                    f"checkpoint it tracks (md5 {tracked_md5(repo, commits['bias05'])})")
