"""`log` and `show` data, and revisions, on real repositories with several releases and real metrics."""
from __future__ import annotations

import json
import re
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from gitmodel import gitobjects, gitrepo, history, registry, results, revisions
from gitmodel.errors import GitModelError
from gitmodel.revisions import UnknownRevision
from tests.conftest import RELEASES, git


def stored(repo: Path, rev: str) -> dict:
    return json.loads(git(repo, "show", f"{rev}:metrics/sentiment/sentiment.json"))


def commit_of(repo: Path, rev: str) -> str:
    return git(repo, "rev-parse", f"{rev}^{{commit}}").strip()


def stage(repo: Path, stage_name: str, version: str, counter: int, cancel: bool = False) -> None:
    """A stage tag as `gto` writes it, one second after the previous one: GTO (and git-model) order
    stage events by tag time, not by their counter."""
    action = "Unassigning" if cancel else "Assigning"
    name = f"sentiment#{stage_name}{'!' if cancel else ''}#{counter}"
    when = int(time.time()) + counter
    subprocess.run(["git", "tag", "-a", name, "-m", f"{action} stage {stage_name} to artifact sentiment version "
                    f"{version}", f"sentiment@{version}^{{commit}}"], cwd=repo, check=True, capture_output=True,
                   env={**os.environ, "GIT_COMMITTER_DATE": f"{when} +0000"})


# ----------------------------------------------------------------------------- log


def test_log_is_newest_version_first_by_semver_with_metrics_read_at_each_release(released):
    [model_log] = history.log(released, "sentiment")
    assert model_log.model == "sentiment" and model_log.total == 3
    assert [str(e.release.version) for e in model_log.entries] == ["v1.10.0", "v1.2.0", "v1.0.0"]
    for entry in model_log.entries:
        tag = entry.release.tag
        doc = stored(released, tag)
        assert entry.release.commit == commit_of(released, tag)
        assert entry.metrics == {"sentiment": {"n": 400, "accuracy": doc["metrics"]["accuracy"]}}
    accuracies = [e.metrics["sentiment"]["accuracy"] for e in model_log.entries]
    assert accuracies[1] > accuracies[2]          # demo v2 beats v1 ...
    assert accuracies[0] < accuracies[1]          # ... and v3 regressed


def test_log_json_entry(released):
    [model_log] = history.log(released, "sentiment")
    data = model_log.entries[0].to_dict()
    record_md5 = history.parse_release_message(
        git(released, "for-each-ref", "refs/tags/sentiment@v1.10.0", "--format=%(contents)"))[1]["md5"]
    assert data == {
        "model": "sentiment", "version": "v1.10.0", "tag": "sentiment@v1.10.0",
        "commit": commit_of(released, "sentiment@v1.10.0"), "date": data["date"], "tagger": "Test <t@example.com>",
        "stages": [], "deregistered": False, "deprecated": False, "md5": record_md5, "message": "demo v3 weights",
        "metrics": {"sentiment": {"n": 400, "accuracy": stored(released, "sentiment@v1.10.0")["metrics"]["accuracy"]}},
    }
    assert data["date"].endswith("Z") and data["date"][:2] == "20"


def test_log_shows_the_stages_each_release_holds_now(released):
    stage(released, "prod", "v1.0.0", 1)
    stage(released, "prod", "v1.2.0", 2)        # prod moves on to v1.2.0
    stage(released, "canary", "v1.10.0", 3)
    stage(released, "staging", "v1.10.0", 4)
    stage(released, "staging", "v1.10.0", 5, cancel=True)
    [model_log] = history.log(released, "sentiment")
    assert {str(e.release.version): e.stages for e in model_log.entries} == {
        "v1.10.0": ["canary"], "v1.2.0": ["prod"], "v1.0.0": []}


def test_log_marks_deregistered_releases_and_deprecated_models(released):
    git(released, "tag", "-a", "sentiment@v1.0.0!#1", "-m", "Deregistering artifact sentiment version v1.0.0",
        "sentiment@v1.0.0^{commit}")
    [model_log] = history.log(released, "sentiment")
    assert [(str(e.release.version), e.release.deregistered) for e in model_log.entries] == [
        ("v1.10.0", False), ("v1.2.0", False), ("v1.0.0", True)]
    assert not model_log.deprecated
    # GTO: deprecated while the deprecation is the model's newest event (a same-second tie goes the other way)
    subprocess.run(["git", "tag", "-a", "sentiment@deprecated#2", "-m", "Deprecating artifact sentiment", "HEAD"],
                   cwd=released, check=True, env={**os.environ, "GIT_COMMITTER_DATE": f"{int(time.time()) + 5} +0000"})
    [model_log] = history.log(released, "sentiment")
    assert model_log.deprecated and all(e.deprecated for e in model_log.entries)


def test_log_limit_reads_only_the_newest(released):
    [model_log] = history.log(released, "sentiment", limit=2)
    assert [str(e.release.version) for e in model_log.entries] == ["v1.10.0", "v1.2.0"]
    assert model_log.total == 3


def test_log_keeps_long_versions_whole(released):
    git(released, "tag", "-a", "sentiment@v1.10.100", "-m", "Registering artifact sentiment version v1.10.100",
        "HEAD")
    [model_log] = history.log(released, "sentiment", limit=1)
    assert str(model_log.entries[0].release.version) == "v1.10.100"


def test_log_of_all_models_and_of_an_unknown_one(released, registry):
    logs = history.log(released)
    assert [m.model for m in logs] == ["sentiment"]
    with pytest.raises(GitModelError) as e:
        history.log(released, "sentimnt")
    assert e.value.message == "unknown model 'sentimnt': no release, artifact, checkpoint or metrics by that name"
    assert e.value.hint == "did you mean 'sentiment'?"
    # a tracked model without releases has an empty log, not an error
    [empty] = history.log(registry, "sentiment-v1")
    assert empty.total == 0 and empty.entries == []


def test_log_reads_release_tags_made_by_hand_or_by_gto(released):
    git(released, "tag", "sentiment@v3.0.0", "HEAD")     # lightweight: GTO ignores it, and so does git-model
    git(released, "tag", "-a", "sentiment@v2.0.0", "-m", "hand-made", "HEAD")   # annotated, no record
    [model_log] = history.log(released, "sentiment", limit=1)
    entry = model_log.entries[0]
    assert str(entry.release.version) == "v2.0.0" and model_log.total == 4
    assert entry.to_dict()["md5"] is None and entry.to_dict()["message"] == "hand-made"
    assert entry.metrics == model_log.entries[0].metrics and entry.metrics["sentiment"]["n"] == 400


def test_a_bad_metrics_blob_in_a_release_is_named(released):
    (released / "metrics/sentiment/sentiment.json").write_text('{"schema_version": 1, "metrics": {"n": "x"}}')
    git(released, "commit", "-q", "-am", "broken metrics")
    git(released, "tag", "-a", "sentiment@v2.0.0", "-m", "Registering artifact sentiment version v2.0.0", "HEAD")
    with pytest.raises(GitModelError) as e:
        history.log(released, "sentiment")
    assert e.value.message.startswith("metrics/sentiment/sentiment.json at sentiment@v2.0.0: field ")


def test_validated_blobs_are_remembered_so_log_skips_jsonschema(released):
    cache = list((released / ".dvc/tmp/gitmodel").glob("validated-metrics-*"))
    for path in cache:
        path.unlink()
    history.log(released, "sentiment")
    [cache] = list((released / ".dvc/tmp/gitmodel").glob("validated-metrics-*"))
    shas = {git(released, "rev-parse", f"sentiment@{v}:metrics/sentiment/sentiment.json").strip() for v in RELEASES}
    assert set(cache.read_text().split()) == shas
    probe = ("import json, sys\nfrom gitmodel import history\nhistory.log(sys.argv[1], 'sentiment')\n"
             "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in "
             "('dvc', 'jsonschema', 'numpy', 'git', 'ruamel', 'llama_cpp'))))")
    proc = subprocess.run([sys.executable, "-c", probe, str(released)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == []


def test_validated_blobs_live_in_the_state_folder():
    from gitmodel import project

    assert results.ValidatedBlobs.STATE_DIR == project.STATE_DIR


def test_results_at_many_agrees_with_results_at(released):
    reg = registry.load(released)
    revs = [revisions.resolve(released, f"sentiment@{v}", reg) for v in RELEASES] + [revisions.resolve(released, "HEAD")]
    many = results.results_at_many(released, revs, with_outputs=True)
    for rev, found in zip(revs, many):
        one = results.results_at(released, rev, with_outputs=True)
        assert [(r.model, r.evalset, r.path, r.doc, r.outputs) for r in found] == \
               [(r.model, r.evalset, r.path, r.doc, r.outputs) for r in one]
        assert found[0].outputs == git(released, "show", f"{rev.commit}:metrics/sentiment/sentiment.outputs.jsonl"
                                       ).encode()


def test_object_reader_reads_batches_larger_than_a_pipe(released):
    specs = [f"sentiment@{v}:metrics/sentiment/sentiment.json" for v in RELEASES] * 2000   # ~250 KB of requests
    with gitobjects.ObjectReader(released) as reader:
        found = reader.read_many(specs)
    assert len(found) == len(specs) and all(f and f[0] == "blob" for f in found)
    assert found[-1][1] == found[2][1]


# ----------------------------------------------------------------------------- show


def test_show_a_release(released):
    shown = history.show(released, "sentiment@v1.2.0")
    assert shown.revision.commit == commit_of(released, "sentiment@v1.2.0")
    [state] = shown.models
    doc = stored(released, "sentiment@v1.2.0")
    assert state.model == "sentiment" and state.release.tag == "sentiment@v1.2.0"
    assert state.md5 == doc["model"]["md5"] and state.tracked_by == "models/sentiment.gguf.dvc"
    lineage = dict(state.lineage)
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", lineage.pop("trained_at"))   # the add time
    assert lineage == {"params": {"epochs": 2}, "base_model": "demo-base", "training_duration_s": 7200}
    assert state.gguf["architecture"] == "llama"
    assert [(r.evalset, r.doc) for r in state.results] == [("sentiment", doc)]
    assert state.message == "demo v2 weights" and state.record["md5"] == state.md5


@pytest.mark.parametrize("ref, version", [("sentiment@latest", "v1.10.0"), ("sentiment@v1.0.0", "v1.0.0"),
                                          ("sentiment@1.2.0", "v1.2.0"), ("sentiment#prod", "v1.2.0"),
                                          ("sentiment@v1.2.0", "v1.2.0")])
def test_show_every_kind_of_registry_reference(released, ref, version):
    stage(released, "prod", "v1.2.0", 1)
    [state] = history.show(released, ref).models
    assert str(state.release.version) == version
    assert state.results[0].doc == stored(released, f"sentiment@{version}")
    assert state.stages == (["prod"] if version == "v1.2.0" else [])


def test_show_a_git_revision_shows_every_model(registry, runner):
    from gitmodel.cli import cli

    for model in ("sentiment-v1", "sentiment-v2"):
        assert runner.invoke(cli, ["eval", model, "--evalset", "sentiment"]).exit_code == 0
    git(registry, "add", "-A")
    git(registry, "commit", "-q", "-m", "metrics")
    shown = history.show(registry, "HEAD")
    assert [s.model for s in shown.models] == ["sentiment-v1", "sentiment-v2", "sentiment-v3"]
    assert [len(s.results) for s in shown.models] == [1, 1, 0]
    assert all(s.tracked_by == f"models/{s.model}.gguf.dvc" for s in shown.models)
    assert shown.models[0].release is None
    before = history.show(registry, "HEAD~1")
    assert [len(s.results) for s in before.models] == [0, 0, 0]
    # the workspace, and a sha
    assert [s.model for s in history.show(registry, "workspace").models] == [s.model for s in shown.models]
    sha = git(registry, "rev-parse", "HEAD").strip()
    assert history.show(registry, sha).revision.commit == sha


def test_show_a_commit_that_is_a_release_names_the_release(released):
    [state] = history.show(released, "HEAD").models
    assert state.release.tag == "sentiment@v1.10.0"
    [state] = history.show(released, "HEAD~1").models
    assert state.release.tag == "sentiment@v1.2.0"


def test_show_reads_lineage_from_dvc_lock_for_a_stage_made_model(tmp_path):
    lock = ("schema: '2.0'\nstages:\n  train:\n    cmd: python train.py\n    deps:\n    - path: data/train.jsonl\n"
            "      hash: md5\n      md5: 0123456789abcdef0123456789abcdef\n      size: 10\n    params:\n"
            "      params.yaml:\n        train.lr: 0.001\n    outs:\n    - path: models/chat.gguf\n      hash: md5\n"
            "      md5: fedcba9876543210fedcba9876543210\n      size: 1234\n")
    repo = tmp_path / "repo"
    repo.mkdir()
    git(repo, "init", "-q")
    (repo / "dvc.lock").write_text(lock)
    git(repo, "add", "dvc.lock")
    git(repo, "commit", "-q", "-m", "lock")
    rev = revisions.resolve(repo, "HEAD")
    with gitobjects.ObjectReader(repo) as reader:
        assert history.models_at(repo, rev, reader) == ["chat"]
        state = history.tracked_at(repo, rev, ["chat"], reader)["chat"]
    assert (state.md5, state.size, state.tracked_by) == ("fedcba9876543210fedcba9876543210", 1234, "dvc.lock")
    assert state.lineage == {"stage": "train", "cmd": "python train.py",
                             "deps": [{"path": "data/train.jsonl", "md5": "0123456789abcdef0123456789abcdef"}],
                             "params": {"params.yaml": {"train.lr": 0.001}}}


# ----------------------------------------------------------------------------- revisions


@pytest.mark.parametrize("ref, message, hint", [
    ("sentiment@v1.2.1", "unknown release sentiment@v1.2.1; releases of sentiment: v1.0.0, v1.2.0, v1.10.0", None),
    ("sentimnt@latest", "sentimnt@latest: model 'sentimnt' has no releases; did you mean 'sentiment'?", None),
    ("sentimnt@v1.0.0", "unknown release sentimnt@v1.0.0; model 'sentimnt' has no releases; did you mean 'sentiment'?",
     None),
    ("sentiment@v1.x", "sentiment@v1.x: 'v1.x' is not a SemVer version like v1.2.0", None),
    ("sentiment#prdo", "sentiment#prdo: no version of 'sentiment' holds stage 'prdo'; stages of sentiment: prod",
     "promote one with `git model promote sentiment VERSION --stage prdo`"),
    ("sentimnt#prod", "sentimnt#prod: no version of 'sentimnt' holds stage 'prod'; model 'sentimnt' has no "
     "releases or stages; did you mean 'sentiment'?", "promote one with `git model promote sentimnt VERSION --stage prod`"),
    ("mian", "unknown revision 'mian'; did you mean 'main'?", None),
    ("sentiment@v1.10", "sentiment@v1.10: 'v1.10' is not a SemVer version like v1.2.0", None),
    ("sentiment", "unknown revision 'sentiment'; did you mean 'sentiment@v1.2.0', 'sentiment@v1.0.0' or 'sentiment#prod#1'?",
     "a model is not a revision: name one of its versions, e.g. sentiment@latest, sentiment@v1.0.0 or sentiment#prod"),
    ("-d", "invalid revision '-d': revisions do not start with '-'", None),
    ("--upload-pack=x", "invalid revision '--upload-pack=x': revisions do not start with '-'", None),
    ("a..b", "unknown revision 'a..b'", None),
    ("v1;rm -rf ~", "unknown revision 'v1;rm -rf ~'", None),
    ("HEAD\nmain", "unknown revision 'HEAD\\nmain'; did you mean 'main'?", None),
])
def test_unknown_refs_name_the_closest_existing_ones(released, ref, message, hint):
    stage(released, "prod", "v1.2.0", 1)
    with pytest.raises(UnknownRevision) as e:
        revisions.resolve(released, ref)
    assert e.value.message == message
    assert e.value.hint == hint


def test_a_name_that_is_both_a_branch_and_a_tag_is_an_error(released):
    git(released, "branch", "candidate")
    git(released, "tag", "candidate", "sentiment@v1.0.0^{commit}")
    with pytest.raises(UnknownRevision) as e:
        revisions.resolve(released, "candidate")
    assert e.value.message == "'candidate' is both a branch and a tag: git-model does not guess"
    assert e.value.hint == "say which: refs/heads/candidate or refs/tags/candidate"
    assert revisions.resolve(released, "refs/tags/candidate").commit == commit_of(released, "sentiment@v1.0.0")
    assert revisions.resolve(released, "refs/heads/candidate").commit == commit_of(released, "HEAD")
    with pytest.raises(UnknownRevision):
        history.show(released, "candidate")


def test_a_branch_whose_name_looks_like_a_glob_is_not_ambiguous(released):
    git(released, "branch", "cand")
    git(released, "tag", "cand-1", "HEAD")
    assert revisions.resolve(released, "cand").commit == commit_of(released, "HEAD")
    assert gitrepo.ref_kinds(released, "cand") == ["branch"]
    assert gitrepo.ref_kinds(released, "can*") == []


def test_show_marks_a_stale_result_with_its_typed_reason(released, demo_dir):
    import shutil

    from click.testing import CliRunner

    from gitmodel.cli import cli

    def gm(*args):
        result = CliRunner().invoke(cli, list(args), prog_name="git model")
        assert result.exit_code == 0, result.output + result.stderr
        return result.stdout

    measured = stored(released, "HEAD")["model"]["md5"]
    shutil.copy(demo_dir / "sentiment-v1.gguf", released / "models/sentiment.gguf")
    gm("add", "models/sentiment.gguf")
    git(released, "commit", "-q", "-am", "new weights, not evaluated")
    tracked = history.show(released, "HEAD").models[0].md5
    assert tracked != measured
    reason = f"it measured model md5 {measured}, but models/sentiment.gguf at HEAD is md5 {tracked}"
    assert any(line.endswith(f"  STALE: {reason}") for line in gm("show", "HEAD").splitlines())
    [state] = json.loads(gm("show", "HEAD", "--json"))["models"]
    assert state["results"]["sentiment"]["stale"] == [
        {"kind": "model", "path": "models/sentiment.gguf", "recorded": measured, "current": tracked, "changes": [],
         "text": reason}]
    # the release it came from is fresh
    [state] = json.loads(gm("show", f"sentiment@{RELEASES[-1]}", "--json"))["models"]
    assert state["results"]["sentiment"]["stale"] == []
    assert "STALE" not in gm("show", f"sentiment@{RELEASES[-1]}")
