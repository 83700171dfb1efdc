"""`git model release` in real git + DVC repositories with real metrics: the tag, its message,
GTO reading it, and every refusal (each leaving no tag and an unchanged repository)."""
from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from gitmodel import history
from gitmodel.cli import cli
from tests.conftest import RELEASES, git, snapshot_tree, status_porcelain


def tags(repo: Path) -> list[str]:
    return git(repo, "tag", "-l").split()


def release(runner, *args: str):
    return runner.invoke(cli, ["release", *args], prog_name="git model")


def new_commit(repo: Path, text: str = "notes\n") -> str:
    """A commit that changes nothing of the model: what a release needs to sit on."""
    (repo / "NOTES.md").write_text(text)
    git(repo, "add", "NOTES.md")
    git(repo, "commit", "-q", "-m", "notes")
    return git(repo, "rev-parse", "HEAD").strip()


def tag_message(repo: Path, tag: str) -> str:
    return git(repo, "for-each-ref", f"refs/tags/{tag}", "--format=%(contents)")


def assert_refused(result, repo: Path, before_tags: list[str], message: str, hint: str | None = None) -> None:
    assert result.exit_code == 3, (result.stdout, result.stderr)
    first = result.stderr.splitlines()[0]
    assert first == f"Error: {message}", result.stderr
    if hint is not None:
        assert result.stderr.splitlines()[1] == f"  hint: {hint}"
    assert result.stdout == ""
    assert tags(repo) == before_tags, "a refused release created a tag"


def assert_usage_error(result, repo: Path, before_tags: list[str], param: str, message: str) -> None:
    """An invalid name or version is a usage error (exit 2), checked before anything runs."""
    assert result.exit_code == 2, (result.stdout, result.stderr)
    assert result.stderr.splitlines()[-1] == f"Error: Invalid value for '{param}': {message}", result.stderr
    assert result.stdout == ""
    assert tags(repo) == before_tags, "a refused release created a tag"


# ----------------------------------------------------------------------------- the tag


def test_the_fixture_released_each_version_on_its_own_commit(released):
    assert set(RELEASES) <= {t.split("@")[1] for t in tags(released)}
    commits = {git(released, "rev-parse", f"sentiment@{v}^{{commit}}").strip() for v in RELEASES}
    assert len(commits) == 3


def test_release_tags_head_with_gto_first_line_message_and_record(released, runner):
    head = new_commit(released)
    result = release(runner, "sentiment", "1.11.0", "-m", "same weights, new notes\n\n# not a comment")
    assert result.exit_code == 0, result.stderr
    assert result.stdout.splitlines()[0].startswith(f"Released sentiment@v1.11.0 on {head[:7]} (models/sentiment.gguf md5 ")
    assert git(released, "cat-file", "-t", "sentiment@v1.11.0").strip() == "tag"        # annotated
    assert git(released, "rev-parse", "sentiment@v1.11.0^{commit}").strip() == head

    message = tag_message(released, "sentiment@v1.11.0")
    lines = message.splitlines()
    assert lines[0] == "Registering artifact sentiment version v1.11.0"
    assert lines[2:5] == ["same weights, new notes", "", "# not a comment"]   # '#' lines survive
    user, record = history.parse_release_message(message, "sentiment")
    assert user == "same weights, new notes\n\n# not a comment"

    dvc_md5 = [line.split()[-1] for line in (released / "models/sentiment.gguf.dvc").read_text().splitlines()
               if "md5:" in line][0]
    metrics = json.loads((released / "metrics/sentiment/sentiment.json").read_text())
    assert record["model"] == "sentiment" and record["version"] == "v1.11.0"
    assert record["md5"] == dvc_md5 == metrics["model"]["md5"]
    assert record["tracked_by"] == "models/sentiment.gguf.dvc"
    lineage = dict(record["lineage"])
    assert lineage.pop("trained_at").endswith("Z")      # when `git model add` ran: the default training date
    assert lineage == {"params": {"epochs": 3}, "base_model": "demo-base", "training_duration_s": 10800}
    assert record["gguf"]["architecture"] == "llama"
    assert record["evalsets"] == {"sentiment": {"md5": metrics["evalset"]["md5"], "metrics": {
        "n": 400, "accuracy": metrics["metrics"]["accuracy"]}}}


def test_each_fixture_release_records_its_own_weights_and_metrics(released):
    md5s = set()
    for version in RELEASES:
        _, record = history.parse_release_message(tag_message(released, f"sentiment@{version}"))
        stored = json.loads(git(released, "show", f"sentiment@{version}:metrics/sentiment/sentiment.json"))
        assert record["md5"] == stored["model"]["md5"]
        assert record["evalsets"]["sentiment"]["metrics"]["accuracy"] == stored["metrics"]["accuracy"]
        md5s.add(record["md5"])
    assert len(md5s) == 3


def test_a_record_in_the_users_message_cannot_stand_in_for_ours(released, runner):
    new_commit(released)
    fake = '```json git-model\n{"md5": "forged"}\n```'
    assert release(runner, "sentiment", "v2.0.0", "-m", fake).exit_code == 0
    user, record = history.parse_release_message(tag_message(released, "sentiment@v2.0.0"), "sentiment")
    assert record["md5"] != "forged" and len(record["md5"]) == 32
    assert user == fake


def test_gto_reads_our_releases_and_stages(released):
    git(released, "tag", "-a", "sentiment#prod#1", "-m", "Assigning stage prod to artifact sentiment version v1.2.0",
        "sentiment@v1.2.0^{commit}")
    git(released, "tag", "-a", "sentiment#staging#2", "-m",
        "Assigning stage staging to artifact sentiment version v1.10.0", "sentiment@v1.10.0^{commit}")
    gto = shutil.which("gto")
    shown = json.loads(subprocess.run([gto, "show", "--json"], cwd=released, capture_output=True, text=True,
                                      check=True).stdout)
    assert shown["sentiment"]["version"] == "v1.10.0"          # SemVer: v1.10.0 above v1.2.0
    assert shown["sentiment"]["stage"] == {"prod": "v1.2.0", "staging": "v1.10.0"}
    assert shown["sentiment"]["registered"] is True
    versions = json.loads(subprocess.run([gto, "show", "sentiment", "--json"], cwd=released, capture_output=True,
                                         text=True, check=True).stdout)
    assert sorted(v["version"] for v in versions) == sorted(RELEASES)
    hist = subprocess.run([gto, "history", "sentiment", "--json"], cwd=released, capture_output=True, text=True,
                          check=True)
    events = json.loads(hist.stdout)
    registrations = {e["version"] for e in events if e["event"] == "registration"}
    assert registrations == set(RELEASES)
    assignments = {(e["stage"], e["version"]) for e in events if e["event"] == "assignment"}
    assert assignments == {("prod", "v1.2.0"), ("staging", "v1.10.0")}
    table = subprocess.run([gto, "history", "sentiment"], cwd=released, capture_output=True, text=True, check=True)
    assert "sentiment@v1.10.0" in table.stdout and "registration" in table.stdout


def test_release_by_a_real_git_model_process(released):
    new_commit(released)
    proc = subprocess.run(["git", "model", "release", "sentiment", "v2.0.0"], cwd=released, capture_output=True,
                          text=True)
    assert proc.returncode == 0, proc.stderr
    assert "sentiment@v2.0.0" in tags(released)


def _start_release(repo: Path, version: str, *extra: str) -> subprocess.Popen:
    return subprocess.Popen(["git", "model", "release", "sentiment", version, *extra], cwd=repo,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


@pytest.mark.slow
@pytest.mark.parametrize("wait", [[], ["--wait", "60"]], ids=["no-wait", "wait"])
def test_concurrent_releases_of_one_head_tag_it_once(released, wait):
    """Two `git model release` processes on the same HEAD with different versions: exactly one tags it,
    the other fails with a clear error (the lock, or HEAD's release found under it), and gto reads it."""
    for attempt in range(3):
        head = new_commit(released, f"notes {attempt}\n")
        versions = [f"v{2 + 2 * attempt}.0.0", f"v{3 + 2 * attempt}.0.0"]
        procs = [_start_release(released, v, *wait) for v in versions]
        outcomes = [(p.wait(), *p.communicate()) for p in procs]
        on_head = [t for t in git(released, "tag", "--points-at", head).split() if t.startswith("sentiment@")]
        assert len(on_head) == 1, outcomes
        [winner] = [i for i, (code, _, _) in enumerate(outcomes) if code == 0]
        code, out, err = outcomes[1 - winner]
        assert code == 3 and on_head == [f"sentiment@{versions[winner]}"], outcomes
        [error] = [line for line in err.splitlines() if line.startswith("Error: ")]
        found = f"Error: HEAD ({head[:7]}) is already released as sentiment@{versions[winner]}"
        if wait:   # the loser waits for the lock, then finds the release
            assert error == found, err
        else:
            assert error.startswith(("Error: another git-model command holds the repository lock: pid ", found)), err
    proc = subprocess.run(["gto", "show", "--json"], cwd=released, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    shown = json.loads(proc.stdout)["sentiment"]["version"]
    assert shown == str(history.log(released, "sentiment")[0].entries[0].release.version)


def test_allow_lower_releases_below_the_highest(released, runner):
    new_commit(released)
    assert release(runner, "sentiment", "v1.3.0", "--allow-lower", "-m", "fix on the 1.3 line").exit_code == 0
    assert "sentiment@v1.3.0" in tags(released)


# ----------------------------------------------------------------------------- refusals


@pytest.fixture
def before(released):
    new_commit(released)
    return tags(released)


def test_refused_when_the_tag_exists(released, runner, before):
    result = release(runner, "sentiment", "v1.10.0")
    commit = git(released, "rev-parse", "sentiment@v1.10.0^{commit}").strip()[:7]
    assert_refused(result, released, before, f"tag sentiment@v1.10.0 already exists on commit {commit}: "
                   "a release is immutable", "release the next version instead, e.g. v1.10.1")


def test_refused_when_the_version_has_the_precedence_of_an_existing_one(released, runner, before):
    result = release(runner, "sentiment", "v1.10.0+build.7")
    assert_refused(result, released, before, "version v1.10.0+build.7 of sentiment was already released as "
                   "sentiment@v1.10.0: a version is never reused")


@pytest.mark.parametrize("version", ["v1.9.0", "1.2.1", "v1.10.0-rc.1", "v0.1.0"])
def test_refused_when_not_above_the_highest(released, runner, before, version):
    shown = version if version.startswith("v") else f"v{version}"
    result = release(runner, "sentiment", version)
    assert_refused(result, released, before, f"{shown} is not above the highest release of sentiment, v1.10.0",
                   f"release v1.10.1 or above, or pass --allow-lower to release {shown} anyway "
                   "(e.g. a fix on an older line)")


def test_a_pre_release_of_the_next_version_is_above(released, runner, before):
    assert release(runner, "sentiment", "v1.11.0-rc.1").exit_code == 0


@pytest.mark.parametrize("version", ["1.2", "v1", "v1.2.0.0", "latest", "v01.2.0", "V1.2.0", "v1.2.0-", ""])
def test_refused_when_the_version_is_not_semver(released, runner, before, version):
    result = release(runner, "sentiment", version)
    assert_usage_error(result, released, before, "VERSION",
                       f"invalid version '{version}': expected SemVer like v1.2.0 (or v1.2.0-rc.1)")


def test_refused_when_head_already_holds_a_release_of_the_model(released, runner):
    before = tags(released)
    result = release(runner, "sentiment", "v2.0.0")
    head = git(released, "rev-parse", "HEAD").strip()[:7]
    assert_refused(result, released, before, f"HEAD ({head}) is already released as sentiment@v1.10.0",
                   "commit the new model first; a commit holds one version of a model")


def test_refused_when_the_dvc_file_has_uncommitted_changes(released, runner, demo_dir, before):
    shutil.copy(demo_dir / "sentiment-v1.gguf", released / "models/sentiment.gguf")
    assert runner.invoke(cli, ["add", "models/sentiment.gguf"]).exit_code == 0
    snap = snapshot_tree(released)
    result = release(runner, "sentiment", "v2.0.0")
    assert_refused(result, released, before, "model 'sentiment' has uncommitted changes: "
                   "models/sentiment.gguf.dvc (modified)",
                   "commit them (or restore them) first: a release tags what is committed")
    assert snapshot_tree(released) == snap


def test_refused_when_metrics_have_uncommitted_changes(released, runner, before):
    path = released / "metrics/sentiment/sentiment.json"
    path.write_text(path.read_text().replace('"accuracy": 0.', '"accuracy": 0.0'))
    (released / "metrics/sentiment/other.json").write_text("{}")
    result = release(runner, "sentiment", "v2.0.0")
    assert_refused(result, released, before, "model 'sentiment' has uncommitted changes: "
                   "metrics/sentiment/other.json (not committed), metrics/sentiment/sentiment.json (modified)")


def test_refused_when_staged_but_not_committed(released, runner, before):
    path = released / "metrics/sentiment/sentiment.outputs.jsonl"
    path.write_text(path.read_text() + "\n")
    git(released, "add", str(path))
    result = release(runner, "sentiment", "v2.0.0")
    assert_refused(result, released, before, "model 'sentiment' has uncommitted changes: "
                   "metrics/sentiment/sentiment.outputs.jsonl (modified)")


def test_refused_when_the_workspace_weights_are_not_the_committed_ones(released, runner, demo_dir, before):
    committed = json.loads((released / "metrics/sentiment/sentiment.json").read_text())["model"]["md5"]
    shutil.copy(demo_dir / "sentiment-v1.gguf", released / "models/sentiment.gguf")
    import hashlib

    actual = hashlib.md5((released / "models/sentiment.gguf").read_bytes()).hexdigest()
    result = release(runner, "sentiment", "v2.0.0")
    assert_refused(result, released, before,
                   f"models/sentiment.gguf in the workspace (md5 {actual}) is not the committed model (md5 {committed})",
                   "track and commit the new weights (`git model add models/sentiment.gguf`, `git model eval`, "
                   "`git commit`), or restore the committed ones with `dvc checkout models/sentiment.gguf`")


def test_refused_when_metrics_are_stale(released, runner, demo_dir):
    old = json.loads((released / "metrics/sentiment/sentiment.json").read_text())["model"]["md5"]
    shutil.copy(demo_dir / "sentiment-v1.gguf", released / "models/sentiment.gguf")
    assert runner.invoke(cli, ["add", "models/sentiment.gguf"]).exit_code == 0
    git(released, "commit", "-q", "-am", "new weights, metrics not re-run")
    new = [line.split()[-1] for line in (released / "models/sentiment.gguf.dvc").read_text().splitlines()
           if "md5:" in line][0]
    before = tags(released)
    result = release(runner, "sentiment", "v2.0.0")
    assert_refused(result, released, before,
                   f"metrics/sentiment/sentiment.json at HEAD is stale: it measured model md5 {old}, "
                   f"but models/sentiment.gguf at HEAD is md5 {new}",
                   "re-evaluate (`git model eval sentiment --evalset sentiment`, or `dvc repro`) and commit")
    # the way out works
    assert runner.invoke(cli, ["eval", "sentiment", "--evalset", "sentiment"]).exit_code == 0
    git(released, "commit", "-q", "-am", "re-evaluated")
    assert release(runner, "sentiment", "v2.0.0").exit_code == 0


def test_refused_when_metrics_used_another_eval_set(released, runner):
    path = released / "evalsets/sentiment.jsonl"
    path.write_text("".join(path.read_text().splitlines(keepends=True)[:100]))
    assert runner.invoke(cli, ["evalset", "add", "evalsets/sentiment.jsonl"]).exit_code == 0
    git(released, "commit", "-q", "-am", "smaller eval set, metrics not re-run")
    before = tags(released)
    result = release(runner, "sentiment", "v2.0.0")
    assert result.exit_code == 3
    assert result.stderr.startswith("Error: metrics/sentiment/sentiment.json at HEAD is stale: it measured eval set md5 ")
    assert tags(released) == before


def test_refused_when_metrics_are_missing(released, runner, demo_dir):
    shutil.copy(demo_dir / "sentiment-v2.gguf", released / "models/other.gguf")
    assert runner.invoke(cli, ["add", "models/other.gguf"]).exit_code == 0
    git(released, "add", "-A")
    git(released, "commit", "-q", "-m", "a second model, not evaluated")
    before = tags(released)
    result = release(runner, "other", "v1.0.0")
    assert_refused(result, released, before, "model 'other' has no metrics at HEAD (nothing in metrics/other/)",
                   "evaluate it (`git model eval other --evalset NAME`, or `dvc repro`) and commit the metrics")


def test_refused_when_the_model_is_not_tracked(released, runner, before):
    result = release(runner, "sentimnt", "v1.0.0")
    assert_refused(result, released, before, "model 'sentimnt' is not tracked at HEAD: no "
                   "models/sentimnt.gguf.dvc and no dvc.lock entry for it; did you mean 'sentiment'?",
                   "track it with `git model add models/sentimnt.gguf`, evaluate it and commit")


def test_refused_when_the_model_was_added_but_not_committed(released, runner, demo_dir, before):
    shutil.copy(demo_dir / "sentiment-v2.gguf", released / "models/other.gguf")
    assert runner.invoke(cli, ["add", "models/other.gguf"]).exit_code == 0
    result = release(runner, "other", "v1.0.0")
    assert_refused(result, released, before,
                   "model 'other' has uncommitted changes: models/other.gguf.dvc (added)")


def test_refused_without_a_commit_to_release(git_repo, runner):
    from gitmodel import project

    repo = git_repo.parent / "empty"
    repo.mkdir()
    git(repo, "init", "-q")
    project.init(repo)
    import os

    os.chdir(repo)
    result = release(runner, "chat", "v1.0.0")
    assert result.exit_code == 3
    assert result.stderr.startswith("Error: the repository has no commit yet")


def test_refused_message_with_control_characters(released, runner, before):
    result = release(runner, "sentiment", "v2.0.0", "-m", "fine\x1b[2Jnot fine")
    assert_refused(result, released, before, "the release message holds control characters ('\\x1b')",
                   "write it as plain text: newlines and tabs are fine")


# ----------------------------------------------------------------------------- hostile input

HOSTILE = ["-d", "--upload-pack=x", "a..b", "v1;rm -rf ~", "my model", "a\x1b[31mb", "sentiment\n",
           "sentiment\x00", "../sentiment", "sentiment@v1.0.0", "HEAD", "$(touch pwned)"]


def escaped(text: str) -> str:
    return text.encode("unicode_escape").decode("ascii")


@pytest.mark.parametrize("name", HOSTILE, ids=escaped)
def test_hostile_model_names_are_refused_before_git_sees_them(released, runner, before, name):
    snap = snapshot_tree(released)
    result = release(runner, "--", name, "v2.0.0")
    assert_usage_error(result, released, before, "MODEL", f"invalid model name '{escaped(name)}': use lowercase "
                       "letters, digits and '-', starting and ending with a letter or digit (e.g. 'chat' or 'fraud-v2')")
    assert name not in result.stderr or name.isprintable()      # shown escaped, never raw
    assert snapshot_tree(released) == snap
    assert not (released / "pwned").exists()


@pytest.mark.parametrize("version", HOSTILE + ["v1.0.0\n", "v2.0.0 ", " v2.0.0", "v2.0.0/../x"], ids=escaped)
def test_hostile_versions_are_refused_before_git_sees_them(released, runner, before, version):
    result = release(runner, "--", "sentiment", version)
    assert_usage_error(result, released, before, "VERSION",
                       f"invalid version '{escaped(version)}': expected SemVer like v1.2.0 (or v1.2.0-rc.1)")
    assert status_porcelain(released) == ""
    assert not (released / "pwned").exists()


@pytest.mark.parametrize("argv", [["-d", "v2.0.0"], ["sentiment", "--upload-pack=x"]])
def test_option_like_arguments_without_double_dash_are_usage_errors(released, runner, before, argv):
    result = release(runner, *argv)
    assert result.exit_code == 2
    assert "No such option" in result.stderr
    assert tags(released) == before


def test_hostile_names_through_a_real_process_and_git(released, before):
    for argv in (["--", "--upload-pack=touch pwned", "v2.0.0"], ["--", "sentiment", "-d"]):
        proc = subprocess.run(["git", "model", "release", *argv], cwd=released, capture_output=True, text=True)
        assert proc.returncode == 2, proc.stderr
        assert "\nError: Invalid value for " in proc.stderr
    assert tags(released) == before
    assert not (released / "pwned").exists()


# ----------------------------------------------------------------------------- stage-produced models


def test_release_of_a_model_produced_by_a_dvc_stage_records_dvc_lock_lineage(gm_repo, runner, demo_dir):
    """models/chat.gguf is the out of a `train` stage: its md5 and lineage come from dvc.lock."""
    import os

    repo = gm_repo
    (repo / "data").mkdir()
    shutil.copy(demo_dir / "sentiment-v2.gguf", repo / "data/weights.bin")
    shutil.copy(demo_dir / "sentiment.jsonl", repo / "evalsets/sentiment.jsonl")
    assert runner.invoke(cli, ["evalset", "add", "evalsets/sentiment.jsonl"]).exit_code == 0
    (repo / "params.yaml").write_text((repo / "params.yaml").read_text() + "\ntrain:\n  epochs: 3\n")
    dvc_yaml = (repo / "dvc.yaml").read_text().replace("stages:\n", (
        "stages:\n  train:\n    cmd: cp data/weights.bin models/chat.gguf\n    deps:\n      - data/weights.bin\n"
        "    params:\n      - train\n    outs:\n      - models/chat.gguf\n"), 1)
    # no `git model add` for a stage's out: its pair is declared by hand
    dvc_yaml = dvc_yaml.replace("foreach: {}", "foreach:\n      chat-sentiment: {model: chat, evalset: sentiment}", 1)
    (repo / "dvc.yaml").write_text(dvc_yaml)
    dvc = shutil.which("dvc")
    proc = subprocess.run([dvc, "repro", "train"], cwd=repo, capture_output=True, text=True,
                          env={**os.environ, "DVC_NO_ANALYTICS": "1"})
    assert proc.returncode == 0, proc.stderr
    assert runner.invoke(cli, ["eval", "chat", "--evalset", "sentiment"]).exit_code == 0
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "chat, trained by a stage")
    before = tags(repo)

    # an uncommitted change to chat's entry in dvc.lock is refused...
    lock = (repo / "dvc.lock").read_text()
    (repo / "dvc.lock").write_text(lock.replace("epochs: 3", "epochs: 4"))
    result = release(runner, "chat", "v1.0.0")
    assert_refused(result, repo, before, "model 'chat' has uncommitted changes: dvc.lock (stage train)")
    (repo / "dvc.lock").write_text(lock)

    result = release(runner, "chat", "v1.0.0")
    assert result.exit_code == 0, result.stderr
    _, record = history.parse_release_message(tag_message(repo, "chat@v1.0.0"))
    assert record["tracked_by"] == "dvc.lock"
    import hashlib

    assert record["md5"] == hashlib.md5((repo / "models/chat.gguf").read_bytes()).hexdigest()
    assert record["lineage"]["stage"] == "train"
    assert record["lineage"]["cmd"] == "cp data/weights.bin models/chat.gguf"
    assert record["lineage"]["deps"] == [{"path": "data/weights.bin", "md5": record["md5"]}]
    assert record["lineage"]["params"] == {"params.yaml": {"train": {"epochs": 3}}}
