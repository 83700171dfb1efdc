"""`git model rollback` on real repositories: real DVC cache, a real local DVC remote, real GTO tags.

The `in_prod` repository is the `released` fixture (ONE model, `sentiment`: v1.0.0, v1.2.0, v1.10.0 =
demo v1, v2, v3 weights, each with its metrics) where prod went v1.0.0 -> v1.2.0 -> v1.10.0 and the
workspace holds v1.10.0: the regressed v3 is serving and must be rolled back.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.conftest import git, snapshot_tree
from tests.func.stagekit import (
    MODEL,
    MODEL_PATH,
    add_remote,
    consistent,
    copy_demo,
    dvc_get_stage,
    gm,
    gm_ok,
    gto_stages,
    md5,
    release_md5,
    run,
    stray_temps,
    tag_commit,
    tag_message,
    tags,
    tool,
    tracked_md5,
)

V1, V2, V3 = "v1.0.0", "v1.2.0", "v1.10.0"


def head(repo: Path) -> str:
    return git(repo, "rev-parse", "HEAD").strip()


def set_cache_type(repo: Path, value: str) -> None:
    run(repo, tool("dvc"), "config", "--local", "cache.type", value)


def assert_untouched(repo: Path, before_files: dict, before_tags: list, before_head: str) -> None:
    assert snapshot_tree(repo) == before_files
    assert tags(repo) == before_tags
    assert head(repo) == before_head
    assert not stray_temps(repo)


# ----------------------------------------------------------------------------- the rollback


def test_rollback_goes_back_to_the_previous_prod_version_verified_committed_and_tagged(in_prod, tmp_path):
    repo = in_prod
    add_remote(repo)
    old_head = head(repo)
    result = gm_ok("rollback", MODEL)
    out = result.stdout.splitlines()
    assert out[0] == f"Rolled back {MODEL} to {V2} (was {V3})"
    assert out[1] == f"  {MODEL_PATH}: md5 {release_md5(repo, V2)} (copied from the DVC cache; md5 verified)"
    # the workspace: exactly the release's bytes, its .dvc file and its metrics
    assert md5(repo / MODEL_PATH) == release_md5(repo, V2)
    assert (repo / f"{MODEL_PATH}.dvc").read_bytes() == git(repo, "show", f"sentiment@{V2}:{MODEL_PATH}.dvc").encode()
    for name in ("sentiment.json", "sentiment.outputs.jsonl"):
        assert (repo / "metrics/sentiment" / name).read_text() == \
            git(repo, "show", f"sentiment@{V2}:metrics/sentiment/{name}")
    # one commit, with exactly those paths
    assert git(repo, "rev-parse", "HEAD~1").strip() == old_head
    assert git(repo, "log", "-1", "--format=%s").strip() == f"Roll back {MODEL} to {V2} (was {V3})"
    assert sorted(git(repo, "show", "--name-only", "--format=", "HEAD").split()) == [
        "metrics/sentiment/sentiment.json", "metrics/sentiment/sentiment.outputs.jsonl", f"{MODEL_PATH}.dvc"]
    # prod -> v1.2.0 with a new stage tag on the release's commit
    assert tags(repo, "sentiment#*")[-1] == "sentiment#prod#4"
    assert tag_commit(repo, "sentiment#prod#4") == tag_commit(repo, f"sentiment@{V2}")
    message = tag_message(repo, "sentiment#prod#4")
    assert message.splitlines()[0] == f"Assigning stage prod to artifact {MODEL} version {V2}"
    from gitmodel.refs import parse_trailers

    t = parse_trailers(message)
    assert t["Rollback-From"] == V3 and t["Rollback-Commit"] == head(repo) and t["Gate"] == "skipped: rollback"
    assert gto_stages(repo) == {"prod": V2}
    assert dvc_get_stage(repo, "prod", tmp_path / "prod.gguf") == release_md5(repo, V2)
    assert consistent(repo) == V2
    # DVC agrees that the workspace is what the .dvc file says
    assert "up to date" in run(repo, tool("dvc"), "status", f"{MODEL_PATH}.dvc").stdout


def test_repeated_rollbacks_walk_the_prod_history_like_git_checkout_dash(in_prod):
    repo = in_prod
    seen = []
    for _ in range(3):
        gm_ok("rollback", MODEL)
        seen.append(consistent(repo))
    assert seen == [V2, V3, V2]
    assert gto_stages(repo) == {"prod": V2}
    assert git(repo, "log", "-3", "--format=%s").splitlines() == [
        f"Roll back {MODEL} to {V2} (was {V3})", f"Roll back {MODEL} to {V3} (was {V2})",
        f"Roll back {MODEL} to {V2} (was {V3})"]


def test_rollback_to_a_named_version(in_prod):
    result = gm_ok("rollback", MODEL, "--to", "1.0.0")
    assert result.stdout.splitlines()[0] == f"Rolled back {MODEL} to {V1} (was {V3})"
    assert consistent(in_prod) == V1
    # and back again: the previous holder is v1.10.0 now
    gm_ok("rollback", MODEL)
    assert consistent(in_prod) == V3


def test_rollback_and_promote_within_one_second_keep_gto_and_dvc_in_order(released, tmp_path):
    """Tag times have one-second resolution and GTO / `dvc artifacts get` order by them: ours stay ordered."""
    add_remote(released)
    gm_ok("promote", MODEL, V1, "--stage", "prod")
    gm_ok("rollback", MODEL, "--to", V2)
    gm_ok("rollback", MODEL, "--to", V3)
    gm_ok("rollback", MODEL)
    assert gto_stages(released) == {"prod": V2}
    assert dvc_get_stage(released, "prod", tmp_path / "prod.gguf") == release_md5(released, V2)
    times = [int(t) for t in git(released, "for-each-ref", "--sort=refname", "--format=%(taggerdate:unix)",
                                 "refs/tags/sentiment#prod#*").split()]
    assert times == sorted(times) and len(set(times)) == 4


def test_the_users_staged_changes_stay_staged_and_out_of_the_commit(in_prod):
    repo = in_prod
    (repo / "train.py").write_text("print('new training code')\n")
    (repo / "README.md").write_text("# notes\n")
    git(repo, "add", "train.py", "README.md")
    (repo / "scratch.txt").write_text("untracked\n")
    gm_ok("rollback", MODEL)
    assert sorted(git(repo, "show", "--name-only", "--format=", "HEAD").split()) == [
        "metrics/sentiment/sentiment.json", "metrics/sentiment/sentiment.outputs.jsonl", f"{MODEL_PATH}.dvc"]
    assert git(repo, "status", "--porcelain").splitlines() == ["A  README.md", "A  train.py", "?? scratch.txt"]


def test_no_commit_restores_the_workspace_only_and_says_so(in_prod):
    repo = in_prod
    before_head, before_tags = head(repo), tags(repo)
    result = gm_ok("rollback", MODEL, "--no-commit")
    assert result.stdout.splitlines()[0] == f"Restored {MODEL} to {V2} (was {V3})"
    assert result.stdout.splitlines()[-1] == (
        f"Not committed and prod not reassigned (--no-commit). To record it: git model rollback {MODEL} --to {V2}")
    assert head(repo) == before_head and tags(repo) == before_tags
    assert md5(repo / MODEL_PATH) == release_md5(repo, V2)
    assert sorted(git(repo, "status", "--porcelain").splitlines()) == [
        " M metrics/sentiment/sentiment.json", " M metrics/sentiment/sentiment.outputs.jsonl",
        f" M {MODEL_PATH}.dvc"]
    # running it for real afterwards completes it: nothing to copy, one commit, one tag
    result = gm_ok("rollback", MODEL, "--to", V2)
    assert f"  {MODEL_PATH}: md5 {release_md5(repo, V2)} (already in the workspace)" in result.stdout
    assert consistent(repo) == V2


def test_nothing_to_do_when_already_rolled_back(in_prod):
    gm_ok("rollback", MODEL)
    before = (head(in_prod), tags(in_prod))
    result = gm_ok("rollback", MODEL, "--to", V2)
    assert result.stdout == f"{MODEL} is already at {V2} in the workspace, in git and in prod: nothing to do.\n"
    assert (head(in_prod), tags(in_prod)) == before


def test_a_model_not_yet_in_prod_can_be_put_in_place_with_to(released):
    gm_ok("rollback", MODEL, "--to", V1)
    assert consistent(released) == V1
    result = gm("rollback", MODEL)
    assert result.exit_code == 3
    assert result.stderr.splitlines() == [
        f"Error: {MODEL}#prod has had no other version than {V1}: nothing to roll back to",
        f"  hint: name the version: git model rollback {MODEL} --to VERSION"]


def test_rollback_without_prod_needs_a_version(released):
    result = gm("rollback", MODEL)
    assert result.exit_code == 3
    assert result.stderr.splitlines() == [
        f"Error: no version of '{MODEL}' holds prod, so there is no previous one to go back to",
        f"  hint: name the version: git model rollback {MODEL} --to VERSION"]


def test_json_output(in_prod):
    result = gm_ok("rollback", MODEL, "--json")
    doc = json.loads(result.stdout)
    assert doc["target"] == V2 and doc["was"] == V3 and doc["tag"] == "sentiment#prod#4"
    assert doc["md5"] == release_md5(in_prod, V2) and doc["previous_md5"] == release_md5(in_prod, V3)
    assert doc["method"] == "copy" and doc["verified"] == "hashed" and doc["commit"] == head(in_prod)


# ----------------------------------------------------------------------------- cache types and links


@pytest.mark.parametrize("cache_type, method", [("hardlink", "hardlink"), ("symlink", "symlink"), ("copy", "copy"),
                                                ("hardlink,symlink", "hardlink"), ("reflink,copy", "copy")])
def test_the_first_cache_type_this_file_system_supports_is_used(in_prod, cache_type, method):
    repo = in_prod
    set_cache_type(repo, cache_type)
    doc = json.loads(gm_ok("rollback", MODEL, "--json").stdout)
    assert doc["method"] == method and doc["notes"] == []
    model, obj = repo / MODEL_PATH, repo / ".dvc/cache/files/md5" / doc["md5"][:2] / doc["md5"][2:]
    if method == "hardlink":
        assert os.path.samefile(model, obj) and not model.is_symlink()
    elif method == "symlink":
        assert model.is_symlink() and Path(os.readlink(model)) == obj.resolve()
    else:
        assert not model.is_symlink() and not os.path.samefile(model, obj)
        assert model.stat().st_mode & 0o777 == 0o644
    assert consistent(repo) == V2
    assert "up to date" in run(repo, tool("dvc"), "status", f"{MODEL_PATH}.dvc").stdout   # DVC agrees
    # and back: the previous workspace file was a link to (or a copy of) a cache object, nothing is lost
    gm_ok("rollback", MODEL)
    assert consistent(repo) == V3
    assert md5(obj) == doc["md5"]


def test_reflink_on_this_file_system_is_found_out_before_the_model_is_touched(in_prod):
    """With `cache.type reflink` on ext4, DVC's checkout deleted the workspace model
    and then failed. Ours tries the reflink at a temporary name beside the model first, sees the file
    system refuse it, and copies instead: the model is never gone."""
    repo = in_prod
    probe = repo / "models" / "probe"
    probe.write_bytes(b"x")
    supported = subprocess.run(["cp", "--reflink=always", str(probe), str(probe) + "2"], capture_output=True,
                               check=False).returncode == 0
    probe.unlink()
    Path(str(probe) + "2").unlink(missing_ok=True)
    if supported:
        pytest.skip("this file system supports reflinks; the test is about one that does not (ext4)")
    set_cache_type(repo, "reflink")
    result = gm_ok("rollback", MODEL)
    assert "Note: cache.type reflink: reflink (Operation not supported) not supported by this file system " \
           "(found out before the model was touched); used copy" in result.stderr
    assert consistent(repo) == V2


def test_a_failure_while_the_new_file_is_made_leaves_the_old_model_in_place(in_prod, monkeypatch):
    """No type works and even the copy fails (disk full): the model still holds its old bytes."""
    from gitmodel import placement

    repo = in_prod
    set_cache_type(repo, "reflink")
    before_files, before_tags, before_head = snapshot_tree(repo), tags(repo), head(repo)

    def disk_full(src, dst):
        with open(dst, "xb") as f:
            f.write(b"partial")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(placement.shutil, "copyfile", disk_full)
    result = gm("rollback", MODEL)
    assert result.exit_code == 1 and isinstance(result.exception, OSError)
    assert_untouched(repo, before_files, before_tags, before_head)


def test_a_failing_commit_puts_every_file_back(in_prod):
    """A pre-commit hook refuses the commit: the model, its .dvc file and metrics are as they were."""
    repo = in_prod
    hook = repo / ".git/hooks/pre-commit"
    hook.write_text("#!/bin/sh\necho 'no commits today' >&2\nexit 1\n")
    hook.chmod(0o755)
    before_files, before_tags, before_head = snapshot_tree(repo), tags(repo), head(repo)
    result = gm("rollback", MODEL)
    assert result.exit_code == 3
    assert result.stderr.startswith("Error: git commit --only --quiet failed: no commits today")
    assert_untouched(repo, before_files, before_tags, before_head)


# ----------------------------------------------------------------------------- the object: cache, remote, refusals


def test_the_object_is_fetched_from_the_dvc_remote_when_the_cache_lost_it(in_prod):
    repo = in_prod
    remote = add_remote(repo)
    shutil.rmtree(repo / ".dvc/cache")
    result = gm_ok("rollback", MODEL)
    assert "fetched from the DVC remote; md5 verified" in result.stdout.splitlines()[1]
    assert consistent(repo) == V2
    # the workspace bytes it replaced (v1.10.0, whose object the cache had lost too) were kept in the cache
    assert md5(repo / ".dvc/cache/files/md5" / release_md5(repo, V3)[:2] / release_md5(repo, V3)[2:]) == \
        release_md5(repo, V3)
    shutil.rmtree(remote)
    gm_ok("rollback", MODEL)
    assert consistent(repo) == V3


def test_a_missing_object_without_a_remote_stops_before_anything_is_touched(in_prod):
    repo = in_prod
    v2 = release_md5(repo, V2)
    (repo / ".dvc/cache/files/md5" / v2[:2] / v2[2:]).unlink()
    before = snapshot_tree(repo), tags(repo), head(repo)
    result = gm("rollback", MODEL)
    assert result.exit_code == 3
    assert result.stderr.splitlines()[0] == (
        f"Error: object {v2} is not in the local DVC cache ({repo}/.dvc/cache) and no default DVC remote is "
        "configured to fetch it from")
    assert result.stderr.splitlines()[1].startswith("  hint: configure the remote that holds it")
    assert_untouched(repo, *before)


def test_a_missing_object_that_the_remote_lacks_too_is_named(in_prod):
    repo = in_prod
    add_remote(repo)
    v2 = release_md5(repo, V2)
    (repo / ".dvc/cache/files/md5" / v2[:2] / v2[2:]).unlink()
    (repo.parent / f"{repo.name}-dvc-remote/files/md5" / v2[:2] / v2[2:]).unlink()
    before = snapshot_tree(repo), tags(repo), head(repo)
    result = gm("rollback", MODEL)
    assert result.exit_code == 3
    assert result.stderr.splitlines()[0] == (
        f"Error: object {v2} is neither in the local DVC cache nor on DVC remote 'storage'")
    assert_untouched(repo, *before)


def test_a_corrupt_cache_object_is_refused_before_anything_is_touched(in_prod):
    repo = in_prod
    v2 = release_md5(repo, V2)
    obj = repo / ".dvc/cache/files/md5" / v2[:2] / v2[2:]
    obj.chmod(0o644)
    data = bytearray(obj.read_bytes())
    data[-1] ^= 0xFF
    obj.write_bytes(bytes(data))
    before = snapshot_tree(repo), tags(repo), head(repo)
    result = gm("rollback", MODEL)
    assert result.exit_code == 3
    assert result.stderr.splitlines()[0].startswith(f"Error: DVC cache object {obj} is corrupt: its md5 is ")
    assert_untouched(repo, *before)


def test_a_dirty_model_is_refused_naming_the_file_and_force_discards_it(in_prod, demo_dir):
    repo = in_prod
    copy_demo(demo_dir, "v1", repo / MODEL_PATH, pad_mib=1)     # bytes DVC has never seen
    dirty = md5(repo / MODEL_PATH)
    before = snapshot_tree(repo), tags(repo), head(repo)
    result = gm("rollback", MODEL)
    assert result.exit_code == 3
    assert result.stderr.splitlines() == [
        f"Error: {MODEL_PATH} has changes that are not in the DVC cache (md5 {dirty}): a rollback would lose them",
        f"  hint: keep them with `git model add {MODEL_PATH}` (then commit), or pass --force to discard them"]
    assert_untouched(repo, *before)
    gm_ok("rollback", MODEL, "--force")
    assert consistent(repo) == V2


def test_workspace_bytes_that_are_in_the_cache_are_not_dirty(in_prod, demo_dir):
    """Another version's weights in the workspace (`dvc checkout` of an old .dvc, say) lose nothing."""
    repo = in_prod
    shutil.copy(demo_dir / "sentiment-v1.gguf", repo / MODEL_PATH)
    gm_ok("rollback", MODEL)
    assert consistent(repo) == V2


def test_unknown_version_names_the_existing_ones(in_prod):
    before = snapshot_tree(in_prod), tags(in_prod), head(in_prod)
    result = gm("rollback", MODEL, "--to", "v9.9.9")
    assert result.exit_code == 3
    assert result.stderr.splitlines() == [
        "Error: release sentiment@v9.9.9 does not exist; releases of sentiment: v1.0.0, v1.2.0, v1.10.0"]
    assert_untouched(in_prod, *before)


@pytest.mark.parametrize("name, what", [("index.lock", "index"), ("HEAD.lock", "HEAD"),
                                        ("refs/heads/main.lock", "branch main")])
def test_a_stale_git_lock_is_reported_with_what_to_do(in_prod, name, what):
    """A git killed mid-commit (with its process group) leaves one of these behind."""
    repo = in_prod
    assert git(repo, "symbolic-ref", "--short", "HEAD").strip() == "main"
    lock = repo / ".git" / name
    lock.write_text("")
    before = snapshot_tree(repo), tags(repo), head(repo)
    result = gm("rollback", MODEL)
    assert result.exit_code == 3
    assert result.stderr.splitlines() == [
        (f"Error: git's {what} is locked: {lock} exists. Another git process is running in this repository, or "
         "one was killed while holding the lock; nothing was changed"),
        f"  hint: if no git process is running, remove it (rm {lock}) and run the rollback again"]
    assert_untouched(repo, *before)
    lock.unlink()
    gm_ok("rollback", MODEL)
    assert consistent(repo) == V2


# ----------------------------------------------------------------------------- the repository lock


def _hold_lock_in_eval(repo: Path) -> subprocess.Popen:
    """A real `git model eval` process, once it holds the repository lock, stopped (SIGSTOP) there.

    Stopped, so that on a busy machine it cannot finish before the command under test asks for the
    lock; the caller resumes it (SIGCONT)."""
    proc = subprocess.Popen([tool("git-model"), "eval", MODEL, "--evalset", "sentiment", "--force"], cwd=repo,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    lock = repo / ".dvc/tmp/gitmodel/lock"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if json.loads(lock.read_text() or "{}").get("pid") == proc.pid:
                os.kill(proc.pid, signal.SIGSTOP)
                return proc
        except (OSError, ValueError):
            pass
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.002)
    raise AssertionError("the eval never took the lock")


def test_a_rollback_during_an_eval_fails_naming_it(in_prod):
    repo = in_prod
    before_head, before_tags = head(repo), tags(repo)
    proc = _hold_lock_in_eval(repo)
    try:
        result = gm("rollback", MODEL)
    finally:
        os.kill(proc.pid, signal.SIGCONT)
        proc.communicate()
    assert result.exit_code == 3
    lines = result.stderr.splitlines()
    assert lines[0].startswith(f"Error: another git-model command holds the repository lock: pid {proc.pid} on ")
    assert f"(git model eval {MODEL} --evalset sentiment --force, since " in lines[0]
    assert lines[1] == "  hint: wait for it to finish, or pass --wait SECONDS to wait for it"
    assert head(repo) == before_head and tags(repo) == before_tags


def test_a_rollback_during_an_eval_waits_for_it_with_wait(in_prod):
    repo = in_prod
    proc = _hold_lock_in_eval(repo)
    rollback = subprocess.Popen([tool("git-model"), "rollback", MODEL, "--wait", "120"], cwd=repo,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    first_line = rollback.stderr.readline()        # said once the rollback is waiting for the lock
    os.kill(proc.pid, signal.SIGCONT)
    (_, rest), proc_out = rollback.communicate(), proc.communicate()
    assert proc.returncode == 0, proc_out
    assert first_line.startswith(f"Waiting for the repository lock held by pid {proc.pid} on ")
    # once it has the lock, the rollback finds the eval's new (uncommitted) result and keeps it
    assert rollback.returncode == 3, (first_line, rest)
    assert "Error: the rollback would overwrite or remove what git does not hold: " \
           f"metrics/{MODEL}/sentiment.json (uncommitted change)" in rest
    git(repo, "commit", "-q", "-am", "re-evaluated")
    gm_ok("rollback", MODEL)
    assert consistent(repo) == V2      # the eval's metrics (of v1.10.0) were replaced by v1.2.0's


# ----------------------------------------------------------------------------- a model produced by a dvc.yaml stage


@pytest.fixture
def trained(gm_repo, demo_dir) -> Path:
    """`sentiment` is the out of a `train` stage (dvc.lock); releases v1.0.0 and v2.0.0; prod v1 -> v2;
    evals run by `dvc repro` (their entries in dvc.lock too). A second model, `other`, is left alone."""
    repo = gm_repo
    (repo / "data").mkdir()
    for v in ("v1", "v2"):
        shutil.copy(demo_dir / f"sentiment-{v}.gguf", repo / f"data/weights-{v}.bin")
    shutil.copy(demo_dir / "sentiment.jsonl", repo / "evalsets/sentiment.jsonl")
    gm_ok("evalset", "add", "evalsets/sentiment.jsonl")
    shutil.copy(demo_dir / "sentiment-v3.gguf", repo / "models/other.gguf")
    gm_ok("add", "models/other.gguf")
    params = repo / "params.yaml"
    params.write_text(params.read_text() + "\ntrain:\n  weights: v1\n")
    dvc_yaml = (repo / "dvc.yaml").read_text()
    dvc_yaml = dvc_yaml.replace("stages:\n", (
        "stages:\n  train:\n    cmd: cp data/weights-${train.weights}.bin models/sentiment.gguf\n"
        "    deps:\n      - data\n    params:\n      - train\n    outs:\n      - models/sentiment.gguf\n"), 1)
    dvc_yaml = dvc_yaml.replace("artifacts:\n", "artifacts:\n  sentiment:\n    path: models/sentiment.gguf\n"
                                                "    type: model\n", 1)
    dvc_yaml = dvc_yaml.replace("    foreach:\n", "    foreach:\n      sentiment-sentiment: {model: sentiment, evalset: sentiment}\n", 1)
    (repo / "dvc.yaml").write_text(dvc_yaml)
    gm_ok("init")   # a model declared by hand gets its params.yaml section (eval.models.sentiment), as `add` writes it
    for version, weights in (("v1.0.0", "v1"), ("v2.0.0", "v2")):
        params.write_text(params.read_text().replace("weights: v1", f"weights: {weights}"))
        run(repo, tool("dvc"), "repro")
        git(repo, "add", "-A")
        git(repo, "commit", "-q", "-m", f"train {weights}")
        gm_ok("release", MODEL, version)
    gm_ok("promote", MODEL, "v1.0.0", "--stage", "prod")
    gm_ok("promote", MODEL, "v2.0.0", "--stage", "prod")
    assert (repo / f"{MODEL_PATH}.dvc").exists() is False
    return repo


def test_rollback_of_a_model_produced_by_a_dvc_stage_restores_its_dvc_lock_entries(trained, demo_dir, tmp_path):
    repo = trained
    other_before = (repo / "models/other.gguf.dvc").read_bytes(), md5(repo / "models/other.gguf")
    other_lock = [line for line in (repo / "dvc.lock").read_text().split("eval@") if line.startswith("other-")]
    result = gm_ok("rollback", MODEL)
    assert result.stdout.splitlines()[0] == f"Rolled back {MODEL} to v1.0.0 (was v2.0.0)"
    assert md5(repo / MODEL_PATH) == md5(demo_dir / "sentiment-v1.gguf") == tracked_md5(repo, "HEAD")
    assert sorted(git(repo, "show", "--name-only", "--format=", "HEAD").split()) == [
        "dvc.lock", "metrics/sentiment/sentiment.json", "metrics/sentiment/sentiment.outputs.jsonl"]
    # the train stage's entry (deps, params, outs) and sentiment's eval entries are v1.0.0's; other's are untouched
    from ruamel.yaml import YAML

    now = YAML(typ="safe").load((repo / "dvc.lock").read_text())["stages"]
    then = YAML(typ="safe").load(git(repo, "show", "sentiment@v1.0.0:dvc.lock"))["stages"]
    assert now["train"] == then["train"]
    assert now["eval@sentiment-sentiment"] == then["eval@sentiment-sentiment"]
    assert [line for line in (repo / "dvc.lock").read_text().split("eval@") if line.startswith("other-")] == other_lock
    assert ((repo / "models/other.gguf.dvc").read_bytes(), md5(repo / "models/other.gguf")) == other_before
    assert consistent(repo) == "v1.0.0"
    # DVC: the model and evals are in sync with dvc.lock; only the train stage's params moved on (the code
    # says v2, the weights are v1's), which is what a rollback of the weights alone means
    status = run(repo, tool("dvc"), "status", "--json").stdout
    assert set(json.loads(status)) == {"train"}, status
    assert gto_stages(repo) == {"prod": "v1.0.0"}
    add_remote(repo)
    assert dvc_get_stage(repo, "prod", tmp_path / "prod.gguf") == md5(demo_dir / "sentiment-v1.gguf")
