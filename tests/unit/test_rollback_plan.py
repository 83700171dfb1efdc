"""The rollback's decision, on plain data: no git, no DVC, no disk."""
from __future__ import annotations

from pathlib import Path

import pytest

from gitmodel.errors import GitError, ModelNotFound
from gitmodel.refs import Version
from gitmodel.registry import Release
from gitmodel.rollback_plan import Facts, FileState, RollbackRefused, commit_message, model_action, plan

MD5_V1, MD5_V2 = "a" * 32, "b" * 32
V1, V2 = Version.parse("v1.0.0"), Version.parse("v2.0.0")
RELEASE = Release("chat", V1, "chat@v1.0.0", "c1" * 20, 10)
DVC = "models/chat.gguf.dvc"
ACC = "metrics/chat/sentiment.json"
OUT = "metrics/chat/sentiment.outputs.jsonl"
NEW = "metrics/chat/qa.json"


def dvc_file(md5: str) -> bytes:
    return f"outs:\n- md5: {md5}\n  size: 100\n  path: chat.gguf\n".encode()


def lock(model_md5: str, other_md5: str = "c" * 32) -> str:
    return ("schema: '2.0'\nstages:\n"
            f"  train:\n    cmd: python train.py\n    outs:\n    - path: models/chat.gguf\n      md5: {model_md5}\n"
            f"  other:\n    cmd: python other.py\n    outs:\n    - path: data/other.bin\n      md5: {other_md5}\n")


def facts(**changes) -> Facts:
    """v2 in prod and at HEAD, committed and clean; the target is v1, tracked by a .dvc file."""
    at_v1 = {ACC: b'{"v": 1}', OUT: b"v1\n"}
    at_v2 = {ACC: b'{"v": 2}', OUT: b"v2\n", NEW: b'{"qa": 2}'}
    files = {DVC: FileState(dvc_file(MD5_V2), dvc_file(MD5_V2), dvc_file(MD5_V2))}
    files.update({p: FileState(data, data, data) for p, data in at_v2.items()})
    base = dict(
        model="chat", release=RELEASE, commit=True, head="d" * 40, prod_version=V2, head_label=None,
        release_dvc=dvc_file(MD5_V1), release_lock=None, head_lock=None, workspace_lock=None, tracked_now="dvc",
        release_metrics=at_v1, head_metrics=at_v2, workspace_metrics=sorted(at_v2), files=files,
        branch="main", identity="Jane <jane@example.com>")
    base.update(changes)
    return Facts(**base)


def test_a_clean_rollback_restores_the_release_files_removes_the_others_commits_and_moves_prod():
    p = plan(facts())
    assert (p.md5, p.kind, p.was, p.tracked_file) == (MD5_V1, "dvc", "v2.0.0", DVC)
    assert p.restore == [(DVC, dvc_file(MD5_V1)), (ACC, b'{"v": 1}'), (OUT, b"v1\n")]
    assert p.remove == [NEW]
    assert p.commit_paths == [DVC, NEW, ACC, OUT]
    assert p.assign_prod and not p.lock_left_out
    assert p.identity == "Jane <jane@example.com>"
    assert set(p.touched) >= {DVC, "dvc.lock", ACC, OUT, NEW}


def test_files_already_as_at_the_release_are_not_rewritten_and_prod_already_there_does_not_move():
    same = {DVC: FileState(dvc_file(MD5_V1), dvc_file(MD5_V1), dvc_file(MD5_V1)),
            ACC: FileState(b'{"v": 1}', b'{"v": 1}', b'{"v": 1}'), OUT: FileState(b"v1\n", b"v1\n", b"v1\n")}
    p = plan(facts(prod_version=V1, head_label="v1.0.0", files=same, head_metrics={ACC: b'{"v": 1}', OUT: b"v1\n"},
                   workspace_metrics=[ACC, OUT]))
    assert p.restore == [] and p.remove == []
    assert not p.assign_prod
    assert p.was == "v1.0.0"


def test_without_a_prod_holder_was_names_what_head_holds():
    p = plan(facts(prod_version=None, head_label="unreleased 12345678"))
    assert p.was == "unreleased 12345678" and p.assign_prod


def test_an_untracked_metrics_file_is_refused_naming_it():
    f = facts()
    f.workspace_metrics = sorted(f.workspace_metrics + ["metrics/chat/mine.json"])
    f.files["metrics/chat/mine.json"] = FileState(b"mine", None, None)
    with pytest.raises(RollbackRefused, match=r"metrics/chat/mine.json \(not committed\); nothing was changed"):
        plan(f)


def test_an_edited_dvc_file_is_refused_and_a_staged_one_too():
    f = facts()
    f.files[DVC] = FileState(b"edited", dvc_file(MD5_V2), dvc_file(MD5_V2))
    with pytest.raises(RollbackRefused, match=r"chat.gguf.dvc \(uncommitted change\)"):
        plan(f)
    f.files[DVC] = FileState(b"staged", b"staged", dvc_file(MD5_V2))
    with pytest.raises(RollbackRefused, match=r"chat.gguf.dvc \(staged change\)"):
        plan(f)


def test_a_staged_change_is_refused_only_when_the_rollback_commits():
    f = facts(commit=False)
    f.files[ACC] = FileState(b'{"v": 2}', b'{"v": "staged"}', b'{"v": 2}')
    assert plan(f).commit_paths == []
    f.commit = True
    with pytest.raises(RollbackRefused, match=r"sentiment.json \(staged change\)"):
        plan(f)


def test_an_uncommitted_change_of_the_models_dvc_lock_entries_is_refused():
    with pytest.raises(RollbackRefused, match=r"dvc.lock \(uncommitted change of the entries of chat\)"):
        plan(facts(head_lock=lock(MD5_V2), workspace_lock=lock("e" * 32)))


@pytest.mark.parametrize("changes, message", [
    (dict(branch=None), r"HEAD is detached \(at ddddddd\)"),
    (dict(busy="a merge"), r"git is in the middle of a merge"),
    (dict(git_locks=[Path("/r/.git/index.lock")]), r"git's index is locked: /r/.git/index.lock exists"),
    (dict(git_locks=[Path("/r/.git/HEAD.lock")]), r"git's HEAD is locked: /r/.git/HEAD.lock exists"),
    (dict(git_locks=[Path("/r/.git/refs/heads/main.lock")]),
     r"git's branch main is locked: /r/.git/refs/heads/main.lock exists"),
    (dict(head=None), r"the repository has no commit yet"),
])
def test_what_would_make_the_commit_fail_is_refused_and_no_commit_is_not(changes, message):
    with pytest.raises(RollbackRefused, match=message):
        plan(facts(**changes))
    p = plan(facts(commit=False, **changes))
    assert not p.commit and p.commit_paths == []


def test_an_unknown_committer_is_refused_with_gits_own_message():
    error = GitError("git does not know who you are (no user.name / user.email)")
    with pytest.raises(GitError, match="does not know who you are"):
        plan(facts(identity=None, identity_error=error))


def test_a_switch_of_how_the_model_is_tracked_is_refused():
    with pytest.raises(RollbackRefused, match=r"tracked by a stage in dvc.lock now but was tracked by "
                                              r"models/chat.gguf.dvc at chat@v1.0.0"):
        plan(facts(tracked_now="lock"))


def test_a_release_that_does_not_track_the_model_is_refused():
    with pytest.raises(ModelNotFound, match=r"release chat@v1.0.0 does not track models/chat.gguf"):
        plan(facts(release_dvc=None, release_lock=None))


def test_a_lock_tracked_model_gets_its_lock_entry_back_and_other_stages_keep_theirs():
    p = plan(facts(release_dvc=None, tracked_now="lock", release_lock=lock(MD5_V1, "0" * 32),
                   head_lock=lock(MD5_V2), workspace_lock=lock(MD5_V2)))
    assert p.kind == "lock" and p.md5 == MD5_V1 and p.tracked_file == "dvc.lock"
    [(path, text)] = [r for r in p.restore if r[0] == "dvc.lock"]
    assert f"md5: {MD5_V1}" in text and "c" * 32 in text and "0" * 32 not in text
    assert "dvc.lock" in p.commit_paths and DVC not in p.commit_paths


def test_a_lock_with_other_stages_uncommitted_changes_is_refused_for_a_lock_tracked_model():
    with pytest.raises(RollbackRefused, match="dvc.lock has uncommitted changes of other stages"):
        plan(facts(release_dvc=None, tracked_now="lock", release_lock=lock(MD5_V1),
                   head_lock=lock(MD5_V2), workspace_lock=lock(MD5_V2, "f" * 32)))


def test_a_lock_with_other_stages_changes_is_left_out_of_the_commit_of_a_dvc_tracked_model():
    evals = lambda md5: (f"schema: '2.0'\nstages:\n  eval:\n    cmd: git model eval chat\n    outs:\n"  # noqa: E731
                         f"    - path: {ACC}\n      md5: {md5}\n"
                         "  other:\n    cmd: x\n    outs:\n    - path: data/other.bin\n      md5: {other}\n")
    head = evals("1" * 32).replace("{other}", "c" * 32)
    workspace = evals("1" * 32).replace("{other}", "f" * 32)
    release = evals("2" * 32).replace("{other}", "c" * 32)
    p = plan(facts(head_lock=head, workspace_lock=workspace, release_lock=release))
    assert "dvc.lock" not in p.commit_paths and p.lock_left_out
    assert any(path == "dvc.lock" for path, _ in p.restore)


def test_the_workspace_model_is_kept_replaced_or_saved_first_and_unsaved_bytes_are_refused():
    args = dict(rel="models/chat.gguf", target_md5=MD5_V1, tracked_md5=MD5_V2, force=False)
    assert model_action(exists=False, md5=None, in_cache=False, **args) == "replace"
    assert model_action(exists=True, md5=MD5_V1, in_cache=True, **args) == "keep"
    assert model_action(exists=True, md5=MD5_V2, in_cache=True, **args) == "replace"
    assert model_action(exists=True, md5=MD5_V2, in_cache=False, **args) == "save-and-replace"
    with pytest.raises(RollbackRefused, match=r"models/chat.gguf has changes that are not in the DVC cache "
                                              r"\(md5 e{32}\): a rollback would lose them"):
        model_action(exists=True, md5="e" * 32, in_cache=False, **args)
    assert model_action(exists=True, md5="e" * 32, in_cache=False, **{**args, "force": True}) == "replace"


def test_the_commit_message_names_both_versions_and_both_md5s():
    text = commit_message(plan(facts()), MD5_V2)
    assert text.splitlines()[0] == "Roll back chat to v1.0.0 (was v2.0.0)"
    assert f"Model: models/chat.gguf md5 {MD5_V1} (was {MD5_V2})" in text
    assert "Release: chat@v1.0.0 (c1c1c1c1c1c1)" in text
    assert "(was missing)" in commit_message(plan(facts()), None)
