"""A registry a team shares: push, fetch, remote presence and gc on real components.

A is the `released` repository (ONE model, `sentiment`: v1.0.0, v1.2.0, v1.10.0 with real metrics), with
a real bare git repository as `origin` and a real folder as the default DVC remote, committed in
.dvc/config. A teammate, B, is a second clone in another temp folder with its own (empty) DVC cache.
"""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from gitmodel import store
from tests.conftest import git
from tests.func.stagekit import MODEL, MODEL_PATH, copy_demo, gm, gm_ok, md5, release_md5, run, tags, tool

V1, V2, V3 = "v1.0.0", "v1.2.0", "v1.10.0"


class Team:
    def __init__(self, a: Path, origin: Path, storage: Path):
        self.a, self.origin, self.storage = a, origin, storage

    def clone(self, name: str = "b") -> Path:
        b = self.a.parent / name
        git(self.a.parent, "clone", "-q", str(self.origin), str(b))
        return b

    def remote_tags(self) -> list[str]:
        return sorted(git(self.origin, "tag", "-l").split())

    def on_storage(self, md5_: str) -> bool:
        return (self.storage / "files" / "md5" / md5_[:2] / md5_[2:]).is_file()


def use(repo: Path) -> Path:
    os.chdir(repo)
    return repo


@pytest.fixture
def team(released, tmp_path, monkeypatch) -> Team:
    """`released` as A, with origin (a bare repository holding its branch, no tags) and a DVC folder remote."""
    origin = tmp_path / "origin.git"
    git(tmp_path, "init", "-q", "--bare", str(origin))
    storage = tmp_path / "dvc-storage"
    storage.mkdir()
    run(released, tool("dvc"), "remote", "add", "-d", "storage", str(storage))
    git(released, "add", ".dvc/config")
    git(released, "commit", "-q", "-m", "the team's DVC remote")
    git(released, "remote", "add", "origin", str(origin))
    git(released, "push", "-q", "origin", "HEAD:refs/heads/main")
    return Team(released, origin, storage)


def objects_of(repo: Path, version: str) -> set[str]:
    """The md5s a release needs: its weights and its eval set."""
    text = git(repo, "show", f"{MODEL}@{version}:evalsets/sentiment.jsonl.dvc")
    return {release_md5(repo, version), store.parse_dvc_file(text, repo / "x.dvc").md5}


# ----------------------------------------------------------------------------- the story of two machines

def test_push_then_a_teammate_fetches_and_rolls_back_offline(team, monkeypatch):
    a = team.a
    first = gm_ok("push")
    assert "Pushed 4 objects" in first.stdout                 # three checkpoints, one eval set
    assert "Verified" in first.stdout
    assert team.remote_tags() == sorted(tags(a))
    for version in (V1, V2, V3):
        assert all(team.on_storage(m) for m in objects_of(a, version))
    # DVC agrees: the workspace's objects are on the remote for `dvc status -c`
    status = json.loads(run(a, tool("dvc"), "status", "-c", "--json").stdout or "{}")
    assert status == {}

    again = gm_ok("push")
    assert again.stdout.startswith("Nothing to push: 4 objects and 3 tags")
    b = team.clone("b")               # the clone brings the release tags; the stages come next

    gm_ok("promote", MODEL, V1, "--stage", "prod")
    gm_ok("promote", MODEL, V2, "--stage", "prod")
    gm_ok("promote", MODEL, V3, "--stage", "canary", "--fraction", "0.1", "--accept-risk", "a tenth of traffic")
    stages = gm_ok("push")
    assert "Pushed 0 objects (0 B) and 3 tags" in stages.stdout

    use(b)
    assert not (b / ".dvc" / "cache").exists()
    fetched = gm_ok("fetch")
    assert "Fetched 3 tags" in fetched.stdout and "4 objects" in fetched.stdout
    assert sorted(tags(b)) == sorted(tags(a))
    for version in (V1, V2, V3):
        assert all(store.in_cache(b, m) for m in objects_of(a, version))
    shown = gm_ok("status", MODEL)
    assert f"prod:       {V2}" in shown.stdout and "on the remote" in shown.stdout
    assert f"canary:     {V3}, fraction 0.1" in shown.stdout

    # no network from here: the DVC remote and A are gone
    team.storage.rename(team.storage.with_name("storage-gone"))
    a.rename(a.with_name("a-gone"))
    rolled = gm_ok("rollback", MODEL)
    assert f"Rolled back {MODEL} to {V1} (was {V2})" in rolled.stdout
    assert md5(b / MODEL_PATH) == release_md5(b, V1)
    gm_ok("verify", MODEL)
    offline = gm_ok("status", MODEL)
    assert f"prod:       {V1}" in offline.stdout
    assert "could not check DVC remote 'storage'" in offline.stderr


def test_release_push_puts_weights_then_tag(team):
    a = team.a
    (a / "NOTES.md").write_text("a commit after the last release\n")
    git(a, "add", "NOTES.md")
    git(a, "commit", "-q", "-m", "notes")
    result = gm_ok("release", MODEL, "v1.11.0", "--push")
    assert "Pushed sentiment@v1.11.0 to git remote 'origin'" in result.stdout
    assert team.remote_tags() == [f"{MODEL}@v1.11.0"]
    assert all(team.on_storage(m) for m in objects_of(a, "v1.11.0"))


def test_release_push_without_a_dvc_remote_writes_no_tag(team):
    a = team.a
    run(a, tool("dvc"), "remote", "remove", "storage")
    git(a, "commit", "-qam", "no remote")
    before = tags(a)
    result = gm("release", MODEL, "v1.11.0", "--push")
    assert result.exit_code == 3
    assert "no DVC remote is configured" in result.stderr
    assert tags(a) == before and team.remote_tags() == []


def test_release_push_refuses_a_version_already_on_the_git_remote(team):
    a = team.a
    git(a, "commit", "-q", "--allow-empty", "-m", "next")
    git(team.origin, "tag", "-a", f"{MODEL}@v1.11.0", "-m", "a teammate's release", "main")
    result = gm("release", MODEL, "v1.11.0", "--push")
    assert result.exit_code == 3
    assert f"tag {MODEL}@v1.11.0 already exists on git remote 'origin'" in result.stderr
    assert f"{MODEL}@v1.11.0" not in tags(a)


# ----------------------------------------------------------------------------- promotion needs the remote

def test_promotion_of_unpushed_weights_is_refused_then_accepted_after_push(team):
    a = team.a
    refused = gm("promote", MODEL, V1, "--stage", "prod")
    assert refused.exit_code == 3
    assert f"{MODEL}@{V1} is not on DVC remote 'storage'" in refused.stderr
    assert release_md5(a, V1) in refused.stderr
    assert "git model push" in refused.stderr
    assert not tags(a, f"{MODEL}#*")
    gm_ok("push", MODEL)
    promoted = gm_ok("promote", MODEL, V1, "--stage", "prod")
    assert promoted.stdout.rstrip().endswith(f"Share it: git model push {MODEL}")


def test_allow_local_and_staging_skip_the_remote_check(team):
    gm_ok("promote", MODEL, V1, "--stage", "staging")
    gm_ok("promote", MODEL, V1, "--stage", "prod", "--allow-local")
    shown = gm_ok("status", MODEL)
    assert "NOT ON THE REMOTE" in shown.stdout


def test_without_a_remote_the_registry_says_it_lives_here(released):
    promoted = gm_ok("promote", MODEL, V1, "--stage", "prod")
    assert "live on this machine only" in promoted.stdout
    shown = gm_ok("status")
    assert shown.stderr.count("live on this machine only") == 1
    pushed = gm("push")
    assert pushed.exit_code == 3
    assert "no git remote named 'origin'" in pushed.stderr


# ----------------------------------------------------------------------------- bad input and faults

def test_push_without_a_dvc_remote_is_refused(team):
    run(team.a, tool("dvc"), "remote", "remove", "storage")
    result = gm("push")
    assert result.exit_code == 3
    assert "Error: no DVC remote is configured" in result.stderr
    assert "dvc remote add -d" in result.stderr
    assert team.remote_tags() == []


def test_push_to_a_remote_folder_that_disappeared_is_refused(team):
    shutil.rmtree(team.storage)
    result = gm("push")
    assert result.exit_code == 3
    assert f"DVC remote 'storage' is the folder {team.storage}, which does not exist" in result.stderr
    assert not team.storage.exists()          # not created behind the user's back
    assert team.remote_tags() == []


def test_a_tag_on_the_git_remote_with_another_target_is_never_forced(team):
    a = team.a
    git(team.origin, "tag", "-a", f"{MODEL}@{V2}", "-m", "someone else's v1.2.0", "main")
    before = git(team.origin, "rev-parse", f"{MODEL}@{V2}")
    result = gm("push")
    assert result.exit_code == 3
    assert f"tag(s) {MODEL}@{V2} exist on git remote 'origin' with another target" in result.stderr
    assert git(team.origin, "rev-parse", f"{MODEL}@{V2}") == before
    assert team.remote_tags() == [f"{MODEL}@{V2}"]
    assert not list(team.storage.iterdir())       # decided before anything moved


def test_tags_the_git_remote_rejects_are_named_and_the_others_pushed(team):
    hook = team.origin / "hooks" / "update"
    hook.write_text('#!/bin/sh\ncase "$1" in refs/tags/*#prod#*) echo "prod is pushed by CI only" >&2; exit 1;; esac\n')
    hook.chmod(0o755)
    gm_ok("promote", MODEL, V1, "--stage", "prod", "--allow-local")
    result = gm("push")
    assert result.exit_code == 3
    assert f"git remote 'origin' rejected {MODEL}#prod#1: remote rejected" in result.stderr
    assert team.remote_tags() == sorted(f"{MODEL}@{v}" for v in (V1, V2, V3))
    assert all(team.on_storage(m) for m in objects_of(team.a, V1))


def test_an_object_missing_from_the_cache_is_named_and_the_rest_is_pushed(team):
    a = team.a
    lost = release_md5(a, V1)
    path = store.cache_path(a, lost)
    path.chmod(0o644)
    path.unlink()
    result = gm("push")
    assert result.exit_code == 3
    assert f"{MODEL}@{V1}" in result.stderr and f"md5 {lost} is not in the local DVC cache" in result.stderr
    assert f"not pushed (their weights are not on the remote): {MODEL}@{V1}" in result.stderr
    assert team.remote_tags() == sorted([f"{MODEL}@{V2}", f"{MODEL}@{V3}"])
    assert all(team.on_storage(m) for m in objects_of(a, V3))
    assert not team.on_storage(lost)


def test_an_interrupted_push_completes_when_run_again(team, monkeypatch):
    from dvc_objects.fs import local

    real = local.copyfile
    calls = []

    def interrupted(src, dest, *args, **kwargs):      # Ctrl-C while DVC copies the second object
        calls.append(dest)
        if len(calls) == 2:
            Path(dest).write_bytes(b"half")            # what a copy cut short leaves: DVC's temp file
            raise KeyboardInterrupt
        return real(src, dest, *args, **kwargs)

    monkeypatch.setattr(local, "copyfile", interrupted)
    result = gm("push")
    assert result.exit_code == 130, (result.stdout, result.stderr)
    assert "Interrupted: the objects copied so far stay on the DVC remote; no tag was pushed" in result.stderr
    assert team.remote_tags() == []
    needed = set().union(*(objects_of(team.a, v) for v in (V1, V2, V3)))
    assert len([m for m in needed if team.on_storage(m)]) == 1      # the first copy finished, the second did not
    monkeypatch.setattr(local, "copyfile", real)
    done = gm_ok("push")
    assert "Verified" in done.stdout
    assert team.remote_tags() == sorted(tags(team.a))
    for version in (V1, V2, V3):
        assert all(team.on_storage(m) for m in objects_of(team.a, version))


def test_fetch_refuses_a_local_tag_with_another_target(team):
    b = team.clone("b")                       # before A pushed any tag
    git(b, "tag", "-a", f"{MODEL}@{V2}", "-m", "mine", "HEAD")
    gm_ok("push")
    use(b)
    result = gm("fetch")
    assert result.exit_code == 3
    assert f"tag(s) {MODEL}@{V2} exist here with another target than on git remote 'origin'" in result.stderr
    assert tags(b) == [f"{MODEL}@{V2}"]


# ----------------------------------------------------------------------------- gc

def junk(repo: Path, push: bool = False) -> str:
    """An object in the cache (and with ``push`` on the DVC remote) that nothing needs: a file tracked
    once, then no longer."""
    (repo / "scratch.bin").write_bytes(os.urandom(4096))
    run(repo, tool("dvc"), "add", "-q", "scratch.bin")
    if push:
        run(repo, tool("dvc"), "push", "-q", "scratch.bin")
    found = store.parse_dvc_file((repo / "scratch.bin.dvc").read_text(), repo / "scratch.bin.dvc").md5
    (repo / "scratch.bin.dvc").unlink()
    (repo / "scratch.bin").unlink()
    return found


def test_gc_after_a_rollback_keeps_every_release(team):
    a = team.a
    gm_ok("push")
    gm_ok("promote", MODEL, V1, "--stage", "prod")
    gm_ok("promote", MODEL, V2, "--stage", "prod")
    gm_ok("rollback", MODEL)
    extra = junk(a)
    dry = gm_ok("gc", "--dry-run")
    assert "Would remove 1 object (4.0 KiB)" in dry.stdout and extra in dry.stdout
    listed = json.loads(gm_ok("gc", "--dry-run", "--json").stdout)["would_remove"]
    real = json.loads(gm_ok("gc", "--yes", "--json").stdout)["removed"]
    assert real == listed == [{"md5": extra, "size": 4096, "where": "cache"}]
    assert not store.in_cache(a, extra)
    for version in (V1, V2, V3):
        assert all(store.in_cache(a, m) for m in objects_of(a, version))
    assert gm_ok("gc", "--dry-run").stdout.startswith("Nothing to remove")


def test_gc_keeps_the_previous_prod_holder_that_dvc_gc_removes(team):
    a = team.a
    gm_ok("push")
    gm_ok("promote", MODEL, V1, "--stage", "prod")
    gm_ok("promote", MODEL, V2, "--stage", "prod")
    git(a, "checkout", "-q", f"{MODEL}@{V2}")
    run(a, tool("dvc"), "checkout", "-q")
    gm_ok("gc", "--yes")
    assert store.in_cache(a, release_md5(a, V1))
    run(a, tool("dvc"), "gc", "-w", "-f")          # DVC's own gc, the usual way: only the workspace survives
    assert not store.in_cache(a, release_md5(a, V1))


def test_gc_keeps_a_canary_on_a_commit_without_a_release(team, demo_dir):
    a = team.a
    copy_demo(demo_dir, "v2", a / MODEL_PATH, pad_mib=1, seed=7)
    run(a, tool("dvc"), "add", "-q", MODEL_PATH)
    git(a, "commit", "-qam", "an experiment, never released")
    canary = store.parse_dvc_file((a / f"{MODEL_PATH}.dvc").read_text(), a / "x.dvc").md5
    git(a, "tag", "-a", f"{MODEL}#canary#1", "-m", f"Assigning stage canary to artifact {MODEL}", "HEAD")
    git(a, "reset", "-q", "--hard", "HEAD~1")
    run(a, tool("dvc"), "checkout", "-q", "--force")
    assert store.in_cache(a, canary)
    assert canary not in gm_ok("gc", "--dry-run").stdout
    gm_ok("gc", "--yes")
    assert store.in_cache(a, canary)
    assert f"canary:     commit of {MODEL}#canary#1" in gm_ok("status").stdout


def test_gc_cloud_removes_only_what_nothing_needs(team):
    a = team.a
    extra = junk(a, push=True)
    assert team.on_storage(extra)
    gm_ok("push")
    dry = json.loads(gm_ok("gc", "--cloud", "--dry-run", "--json").stdout)["would_remove"]
    assert sorted(r["where"] for r in dry) == ["cache", "remote"] and {r["md5"] for r in dry} == {extra}
    gm_ok("gc", "--cloud", "--yes")
    assert not team.on_storage(extra)
    for version in (V1, V2, V3):
        assert all(team.on_storage(m) for m in objects_of(a, version))


def test_gc_asks_before_removing(team):
    extra = junk(team.a)
    result = gm("gc")
    assert result.exit_code == 1          # no answer on stdin: aborted
    assert store.in_cache(team.a, extra)


# ----------------------------------------------------------------------------- what DVC sees is what we say

def test_presence_agrees_with_dvc_status_cloud(team):
    a = team.a
    gm_ok("push")
    gm_ok("promote", MODEL, V3, "--stage", "prod")
    weights = release_md5(a, V3)                    # the workspace's weights too
    gone = team.storage / "files" / "md5" / weights[:2] / weights[2:]
    gone.chmod(0o644)
    gone.unlink()
    shown = gm_ok("status", MODEL, "--json")
    holder = json.loads(shown.stdout)["models"][0]["stages"]["prod"]
    assert holder["on_remote"] is False
    dvc_says = json.loads(run(a, tool("dvc"), "status", "-c", "--json").stdout)
    assert dvc_says == {MODEL_PATH: "new"}
    refused = gm("promote", MODEL, V3, "--stage", "canary", "--fraction", "0.5")
    assert refused.exit_code == 3 and f"md5 {weights}" in refused.stderr
    gm_ok("push", MODEL)
    assert json.loads(gm_ok("status", MODEL, "--json").stdout)["models"][0]["stages"]["prod"]["on_remote"] is True
    assert json.loads(run(a, tool("dvc"), "status", "-c", "--json").stdout or "{}") == {}


def test_dry_run_lists_and_moves_nothing(team):
    result = gm_ok("push", MODEL, "--remote", "storage", "--dry-run")
    assert result.stdout.startswith("Would push 4 objects")
    assert f"tags: {MODEL}@{V1}, {MODEL}@{V3}, {MODEL}@{V2}" in result.stdout
    assert not list(team.storage.iterdir()) and team.remote_tags() == []


def test_push_of_an_unknown_model_or_remote_is_refused(team):
    unknown = gm("push", "sentimen")
    assert unknown.exit_code == 3 and "did you mean 'sentiment'?" in unknown.stderr
    remote = gm("push", "--remote", "nowhere")
    assert remote.exit_code == 3 and "no DVC remote named 'nowhere' (remotes: storage)" in remote.stderr
    git_remote = gm("push", "--git-remote", "upstream")
    assert git_remote.exit_code == 3 and "no git remote named 'upstream' (remotes: origin)" in git_remote.stderr
    assert team.remote_tags() == []


def test_fetch_from_a_remote_folder_that_disappeared_is_refused(team):
    gm_ok("push")
    b = use(team.clone("b"))
    shutil.rmtree(team.storage)
    result = gm("fetch")
    assert result.exit_code == 3
    assert "which does not exist (an unmounted share?)" in result.stderr
    assert not (b / ".dvc" / "cache").exists()


def test_fetch_names_the_release_whose_weights_were_never_pushed(team):
    a = team.a
    gm_ok("push")
    lost = release_md5(a, V1)
    (team.storage / "files" / "md5" / lost[:2] / lost[2:]).unlink()
    use(team.clone("b"))
    result = gm("fetch", MODEL)
    assert result.exit_code == 3
    assert f"1 not on DVC remote 'storage': {MODEL}@{V1}: {MODEL_PATH} md5 {lost}" in result.stderr


def test_an_empty_registry_has_nothing_to_push(gm_repo, tmp_path):
    storage = tmp_path / "empty-storage"
    storage.mkdir()
    git(tmp_path, "init", "-q", "--bare", str(tmp_path / "empty.git"))
    git(gm_repo, "remote", "add", "origin", str(tmp_path / "empty.git"))
    run(gm_repo, tool("dvc"), "remote", "add", "-d", "storage", str(storage))
    result = gm_ok("push")
    assert result.stdout.startswith("Nothing to push: 0 objects and 0 tags of the registry (no release or stage "
                                    "tags yet)")
