"""git-model and the real `gto` read the same tags the same way: a zoo of tag histories.

One repository holds many small models, each with its own tag history (lightweight tags, unassignments,
deregistrations, deprecations, several versions on one commit, counters out of time order, tags made in
the same second, stages on unreleased commits). For every model, what git-model says -- releases,
latest, every stage holder as `log`, `status`, `show` (revision resolution), the gate's baseline and
`rollback`'s default target see them -- must equal what `gto show --json` says.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from gitmodel import gating, history, project, registry, revisions, rollback_plan, status
from gitmodel.errors import GitModelError
from tests.conftest import git
from tests.func.stagekit import gm, tool

T0 = 1_700_000_000          # commits are made at T0, tags after it: what happens in real life


def tag(repo: Path, name: str, commit: str, when: int, annotated: bool = True) -> None:
    args = ["git", "tag", *(["-a", "-m", f"{name} by hand"] if annotated else []), name, commit]
    subprocess.run(args, cwd=repo, check=True, capture_output=True,
                   env={**os.environ, "GIT_COMMITTER_DATE": f"{when} +0000"})


def commits(repo: Path, n: int) -> list[str]:
    made = []
    for i in range(n):
        subprocess.run(["git", "commit", "-q", "--allow-empty", "-m", f"c{i}"], cwd=repo, check=True,
                       env={**os.environ, "GIT_COMMITTER_DATE": f"{T0} +0000", "GIT_AUTHOR_DATE": f"{T0} +0000"})
        made.append(git(repo, "rev-parse", "HEAD").strip())
    return made


# (model, [(tag name after the model's name, commit index, seconds after T0, annotated)])
ZOO = {
    # a lightweight release tag (on the prod holder's commit) and a lightweight stage tag: GTO ignores both
    "light": [("@v1.0.0", 0, 10, True), ("#prod#1", 0, 11, True), ("@v9.0.0", 0, 12, False),
              ("@v2.0.0", 1, 13, True), ("#prod#2", 1, 14, False)],
    # the prod holder unassigned (`gto deprecate M v2 prod`): prod goes back to v1
    "unassign": [("@v1.0.0", 0, 10, True), ("@v2.0.0", 1, 11, True), ("@v3.0.0", 2, 12, True),
                 ("#prod#1", 0, 20, True), ("#prod#2", 1, 21, True), ("#canary#3", 2, 22, True),
                 ("#prod!#4", 1, 23, True)],
    # v1 -> v2 -> v1 again, then v1 unassigned: v2's assignment still stands
    "reassign": [("@v1.0.0", 0, 10, True), ("@v2.0.0", 1, 11, True), ("#prod#1", 0, 20, True),
                 ("#prod#2", 1, 21, True), ("#prod#3", 0, 22, True), ("#prod!#4", 0, 23, True)],
    # the prod holder deregistered (`gto deregister`): it holds nothing, prod goes back to v1
    "dereg": [("@v1.0.0", 0, 10, True), ("@v2.0.0", 1, 11, True), ("#prod#1", 0, 20, True),
              ("#prod#2", 1, 21, True), ("#staging#3", 1, 22, True), ("@v2.0.0!#4", 1, 23, True)],
    # a deregistration on another commit than the release does not touch it
    "dereg-elsewhere": [("@v1.0.0", 0, 10, True), ("#prod#1", 0, 11, True), ("@v1.0.0!#2", 1, 12, True)],
    # deregistered, then a stage assigned on its commit: bound to the deregistered version, held by none
    "stage-on-dereg": [("@v1.0.0", 0, 10, True), ("@v2.0.0", 1, 11, True), ("#prod#1", 0, 12, True),
                       ("@v2.0.0!#2", 1, 13, True), ("#prod#3", 1, 14, True)],
    # deprecated: no holders
    "deprecated": [("@v1.0.0", 0, 10, True), ("#prod#1", 0, 11, True), ("@deprecated#2", 0, 12, True)],
    # deprecated, then released again: active
    "revived": [("@v1.0.0", 0, 10, True), ("#prod#1", 0, 11, True), ("@deprecated#2", 0, 12, True),
                ("@v2.0.0", 1, 13, True)],
    # a deprecation in the same second as the last other event: not deprecated
    "deprecated-tie": [("@v1.0.0", 0, 10, True), ("#prod#1", 0, 12, True), ("@deprecated#2", 0, 12, True)],
    # several versions on one commit, no stage on it: both are releases
    "two-on-one": [("@v1.0.0", 0, 10, True), ("@v1.1.0", 0, 11, True), ("@v2.0.0", 1, 12, True),
                   ("#prod#1", 1, 13, True)],
    # counters out of time order: time decides, not the counter
    "counters": [("@v1.0.0", 0, 10, True), ("@v2.0.0", 1, 11, True), ("#prod#5", 0, 20, True),
                 ("#prod#3", 1, 21, True), ("#canary#9", 1, 22, True), ("#canary#7", 0, 23, True)],
    # two versions assigned prod in the same second: the one registered first wins (GTO's sort)
    "same-second": [("@v1.0.0", 0, 10, True), ("@v2.0.0", 1, 11, True), ("#prod#2", 1, 20, True),
                    ("#prod#1", 0, 20, True)],
    # same-second registrations too: then the tag name order decides
    "same-second-names": [("@v2.0.0", 1, 10, True), ("@v10.0.0", 0, 10, True), ("#prod#1", 0, 20, True),
                          ("#prod#2", 1, 20, True)],
    # an assignment and an unassignment of one version in the same second: the unassignment wins
    "unassign-tie": [("@v1.0.0", 0, 10, True), ("@v2.0.0", 1, 11, True), ("#prod#1", 0, 20, True),
                     ("#prod#2", 1, 21, True), ("#prod!#3", 1, 21, True)],
    # stages on a commit without a release: GTO names the commit; an unassignment there cancels nothing
    "unreleased": [("@v1.0.0", 0, 10, True), ("#prod#1", 0, 11, True), ("#prod#2", 2, 12, True),
                   ("#canary#3", 2, 13, True), ("#canary!#4", 2, 14, True)],
    # a release made after the stage tag on its commit still binds it
    "late-release": [("#prod#1", 1, 10, True), ("@v1.0.0", 1, 11, True), ("@v0.9.0", 0, 12, True)],
    # a deregistration older than the release (made by hand) does not deregister it
    "dereg-before": [("@v1.0.0!", 0, 10, True), ("@v1.0.0", 0, 11, True), ("#prod#1", 0, 12, True)],
    # only lightweight tags: GTO does not know the model
    "ghost": [("@v1.0.0", 0, 10, False), ("#prod#1", 0, 11, False)],
}


@pytest.fixture(scope="module")
def zoo(tmp_path_factory) -> Path:
    repo = tmp_path_factory.mktemp("zoo") / "repo"
    repo.mkdir()
    git(repo, "init", "-q")
    project.init(repo)
    cs = commits(repo, 3)
    for model, history_ in ZOO.items():
        for suffix, commit, offset, annotated in history_:
            tag(repo, f"{model}{suffix}", cs[commit], T0 + offset, annotated)
    return repo


def gto(repo: Path, *args: str):
    proc = subprocess.run([tool("gto"), *args], cwd=repo, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


# gto's own command line (`gto.cli:app`, what the `gto` executable runs), invoked once per argument list
# in one process: importing gto costs about a second, a zoo of models would pay it per model
GTO_MANY = """
import json, sys
from click.testing import CliRunner
from gto.cli import app
out = []
for args in json.loads(sys.argv[1]):
    result = CliRunner().invoke(app, args, catch_exceptions=False)
    assert result.exit_code == 0, (args, result.output)
    out.append(json.loads(result.stdout))
print(json.dumps(out))
"""


def gto_many(repo: Path, calls: list[list[str]]) -> list:
    proc = subprocess.run([tool("python"), "-c", GTO_MANY, json.dumps(calls)], cwd=repo, capture_output=True,
                          text=True)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def label(event) -> str:
    """A holder as gto names it: the version, or the commit for an unreleased one."""
    return str(event.version) if event.version is not None else event.commit


@pytest.mark.slow
def test_gto_agreement_on_the_zoo(zoo):
    shown = gto(zoo, "show", "--json")                      # active models: latest and stage holders
    reg = registry.load(zoo)
    assert "ghost" not in shown and "ghost" not in reg.models()
    models = [m for m in ZOO if m != "ghost"]
    every_version = gto_many(zoo, [["show", m, "--deprecated", "--json"] for m in models])
    for model, versions in zip(models, every_version):
        registered = [v for v in versions if v["registrations"]]
        gto_active = sorted((v["version"] for v in registered if v["is_active"]), key=registry.Version.parse)
        gto_deregistered = sorted(v["version"] for v in registered if not v["is_active"])
        assert [str(r.version) for r in reg.active_releases(model)] == gto_active, model
        assert sorted(str(r.version) for r in reg.releases[model] if r.deregistered) == gto_deregistered, model
        if model not in shown:                                # deprecated: gto shows nothing of it
            assert model in reg.deprecated and reg.holders(model) == {}, model
            with pytest.raises(revisions.UnknownRevision) as e:
                revisions.resolve(zoo, f"{model}#prod")
            assert e.value.message == (f"{model}#prod: no version of '{model}' holds stage 'prod'; '{model}' is "
                                       f"deprecated (a {model}@deprecated tag is its newest), so no stage holds it")
            continue
        assert model not in reg.deprecated, model
        latest = reg.latest(model)
        assert (str(latest.version) if latest else None) == shown[model]["version"], model
        expected = {s: v for s, v in shown[model]["stage"].items() if v is not None}
        holders = {s: label(e) for s, e in reg.holders(model).items()}
        assert holders == expected, model
        # every read path says the same
        [model_log] = history.log(zoo, model)
        assert {s: str(e.release.version) for e in model_log.entries for s in e.stages} == \
            {s: v for s, v in expected.items() if v.startswith("v")}, model   # log lists releases only
        [st] = status.status(model, start=zoo)
        assert {h.stage: h.version or git(zoo, "rev-parse", f"{h.tag}^{{commit}}").strip() for h in st.stages} \
            == expected, model
        for stage_name, holder in expected.items():
            rev = revisions.resolve(zoo, f"{model}#{stage_name}")
            assert rev.commit == (reg.release(model, holder).commit if holder.startswith("v") else holder)
        baseline = gating.baseline_holder(zoo, model)
        assert (label(baseline) if baseline else None) == expected.get("prod"), model


@pytest.mark.slow
def test_the_default_rollback_target_is_what_gto_shows_once_the_holder_leaves_prod(zoo, tmp_path):
    reg = registry.load(zoo)
    copy = tmp_path / "copy"
    shutil.copytree(zoo, copy, symlinks=True)
    targets = {}
    for model in ZOO:
        holder = reg.holder(model, "prod") if model in reg.models() else None
        if holder is None or holder.version is None:
            continue
        try:
            targets[model] = str(rollback_plan.default_target(reg, model).version)
        except GitModelError:
            targets[model] = None
        # the holder leaves prod, as `gto unassign` would write it
        tag(copy, f"{model}#prod!#{reg.next_counter(model)}", holder.commit, T0 + 100)
    assert len(targets) >= 8
    after = gto(copy, "show", "--json")
    for model, target in targets.items():
        fallback = after[model]["stage"].get("prod")
        assert target == (fallback if fallback is None or fallback.startswith("v") else None), model


@pytest.mark.slow
def test_a_stage_tag_on_a_commit_with_two_versions_is_refused_like_gto(gm_repo):
    [c] = commits(gm_repo, 1)
    tag(gm_repo, "m@v1.0.0", c, T0 + 10)
    tag(gm_repo, "m@v2.0.0", c, T0 + 11)
    tag(gm_repo, "m#prod#1", c, T0 + 12)
    proc = subprocess.run([tool("gto"), "show", "--json"], cwd=gm_repo, capture_output=True, text=True)
    assert proc.returncode != 0 and "Multiple versions are not allowed on the same Git commit" in proc.stderr
    result = gm("status")
    assert result.exit_code == 3
    assert result.stderr.splitlines() == [
        f"Error: the stages of 'm' cannot be read: stage tag m#prod#1 points to commit {c[:12]}, which holds "
        "several versions (m@v1.0.0, m@v2.0.0). GTO refuses such a registry too",
        "  hint: delete the release tag that should not be there (git tag -d TAG; and on the remote: "
        "git push --delete origin TAG)",
    ]


@pytest.mark.slow
def test_a_lightweight_release_tag_is_not_a_release(released):
    """In R, `git tag sentiment@v9.0.0 <the prod commit>` (not annotated): gto ignores it, so `log`,
    `status` and `release` do too."""
    from tests.func.stagekit import MODEL, gm_ok, gto_stages, tag_commit

    v1, v2, v3 = "v1.0.0", "v1.2.0", "v1.10.0"
    gm_ok("promote", MODEL, v1, "--stage", "prod")
    gm_ok("promote", MODEL, v2, "--stage", "prod")
    gm_ok("promote", MODEL, v3, "--stage", "canary", "--fraction", "0.1", "--accept-risk", "watched closely")
    git(released, "tag", f"{MODEL}@v9.0.0", tag_commit(released, f"{MODEL}@{v2}"))
    assert gto_stages(released) == {"prod": v2, "canary": v3}
    entries = json.loads(gm_ok("log", MODEL, "--json").stdout)
    assert [(e["version"], e["stages"]) for e in entries] == [(v3, ["canary"]), (v2, ["prod"]), (v1, [])]
    assert gm_ok("log", MODEL).stdout.splitlines()[0] == f"{MODEL}: 3 releases"
    status = json.loads(gm_ok("status", "--json").stdout)
    assert {s: h["version"] for s, h in status["models"][0]["stages"].items()} == {"prod": v2, "canary": v3}
    (released / "NOTES.md").write_text("notes\n")
    git(released, "add", "NOTES.md")
    git(released, "commit", "-q", "-m", "notes")
    assert gm_ok("release", MODEL, "v1.11.0").stdout.startswith(f"Released {MODEL}@v1.11.0 on ")


@pytest.mark.slow
def test_no_stage_tag_goes_on_a_commit_with_two_versions(gm_repo):
    [c] = commits(gm_repo, 1)
    tag(gm_repo, "m@v1.0.0", c, T0 + 10)
    tag(gm_repo, "m@v1.1.0", c, T0 + 11)
    before = git(gm_repo, "tag", "-l")
    for command in (["promote", "m", "v1.1.0", "--stage", "staging"], ["rollback", "m", "--to", "v1.0.0"]):
        result = gm(*command)
        assert result.exit_code == 3, command
        assert result.stderr.splitlines()[0] == (
            f"Error: commit {c[:12]} holds several versions of m (m@v1.0.0, m@v1.1.0): a stage tag on it would "
            "make `gto show` fail")
    assert git(gm_repo, "tag", "-l") == before
    shown = gto(gm_repo, "show", "--json")
    assert shown["m"]["version"] == "v1.1.0" and not any(shown["m"]["stage"].values())


@pytest.mark.slow
def test_the_registry_writes_assignments_and_unassignments_that_gto_reads_back(released):
    """The one writer of stage tags: assign v1 then v2 to prod, unassign v2 -- gto and git-model both
    give prod back to v1; a write outside `registry.writing` (the lock) and a second release tag are refused."""
    from gitmodel.registry import RegistryConflict, StageError
    from tests.func.stagekit import MODEL, gto_stages, tag_message

    v1, v2 = "v1.0.0", "v1.2.0"
    with registry.writing(released) as reg:
        r1, r2 = reg.find_release(MODEL, v1), reg.find_release(MODEL, v2)
        first = reg.assign(MODEL, "prod", r1, "Jane <jane@example.com>", {"Gate": "none"})
        second = reg.assign(MODEL, "prod", r2, "Jane <jane@example.com>", {"Gate": "passed"})
        assert reg.holder(MODEL, "prod").version == r2.version      # the registry reads its own writes
        gone = reg.unassign(MODEL, "prod", r2, "Jane <jane@example.com>", {"Reason": "bad canary"})
        with pytest.raises(StageError, match=f"{MODEL}@{v2} does not hold stage 'prod'"):
            reg.unassign(MODEL, "prod", r2, "Jane <jane@example.com>", {})
        with pytest.raises(RegistryConflict, match=f"tag {MODEL}@{v1} already exists"):
            reg.register(MODEL, r1.version, r1.commit, "again")
    assert (first.tag, second.tag, gone.tag) == (f"{MODEL}#prod#1", f"{MODEL}#prod#2", f"{MODEL}#prod!#3")
    assert gto_stages(released) == {"prod": v1}
    assert str(registry.load(released).holder(MODEL, "prod").version) == v1
    message = tag_message(released, gone.tag)
    assert message.splitlines()[0] == f"Unassigning stage 'prod' to artifact '{MODEL}' version '{v2}'"
    assert "Assigned-By: Jane <jane@example.com>" in message and "Reason: bad canary" in message
    with pytest.raises(RegistryConflict, match="only under the repository lock"):
        registry.load(released).assign(MODEL, "prod", r2, "Jane <jane@example.com>", {})
