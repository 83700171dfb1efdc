"""Usage errors of blame, bisect and weights-diff: click's exit code 2, before anything is read."""
from __future__ import annotations

from tests.func.stagekit import gm


def test_bisect_needs_an_id_or_a_metric(gm_repo):
    result = gm("bisect", "chat", "--good", "HEAD", "--bad", "HEAD")
    assert result.exit_code == 2
    assert result.stderr.splitlines()[-1] == "Error: give an example ID or --metric KEY (one of the two)"
    both = gm("bisect", "chat", "r1", "--metric", "accuracy", "--good", "HEAD", "--bad", "HEAD")
    assert both.exit_code == 2


def test_threshold_goes_with_metric(gm_repo):
    result = gm("bisect", "chat", "r1", "--threshold", "0.1", "--good", "HEAD", "--bad", "HEAD")
    assert result.exit_code == 2 and "--threshold goes with --metric" in result.stderr


def test_bisect_needs_good_and_bad(gm_repo):
    assert gm("bisect", "chat", "r1", "--bad", "HEAD").exit_code == 2


def test_weights_diff_of_a_path_that_is_not_there_outside_a_repository(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = gm("weights-diff", "a.gguf", "b.gguf")
    assert result.exit_code == 3
    assert result.stderr.splitlines()[0] == ("Error: a.gguf: no such file, and not inside a git repository to "
                                             "read it as a revision")


def test_weights_diff_of_a_revision_that_tracks_no_checkpoint(gm_repo):
    result = gm("weights-diff", "HEAD", "HEAD~1", "--model", "chat")
    assert result.exit_code == 3
    assert result.stderr.splitlines()[0] == ("Error: HEAD: model 'chat' has no tracked checkpoint "
                                             "(models/chat.gguf) at that revision")


def test_blame_of_a_model_without_releases(gm_repo):
    result = gm("blame", "chat", "r1")
    assert result.exit_code == 3
    assert result.stderr.startswith("Error: unknown model 'chat'")


def test_bisect_with_workspace_as_good(gm_repo):
    result = gm("bisect", "chat", "r1", "--good", "workspace", "--bad", "HEAD")
    assert result.exit_code == 3
    assert result.stderr.splitlines()[0] == "Error: --good workspace: bisect reads committed checkpoints"
