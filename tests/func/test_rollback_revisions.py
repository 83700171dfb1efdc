"""`git model rollback --to` reads the revision grammar: every form that names a release of the model
restores it, every other form is refused before anything is touched (real git, DVC and tags)."""
from __future__ import annotations

from pathlib import Path

from tests.conftest import git, snapshot_tree
from tests.func.stagekit import MODEL, consistent, gm, gm_ok, stray_temps, tag_commit, tags

V1, V2, V3 = "v1.0.0", "v1.2.0", "v1.10.0"


def refused(repo: Path, to: str) -> list[str]:
    """Run a rollback that must be refused; check nothing changed; return its stderr lines."""
    before = snapshot_tree(repo), tags(repo), git(repo, "rev-parse", "HEAD")
    result = gm("rollback", MODEL, "--to", to)
    assert result.exit_code == 3, (result.stdout, result.stderr)
    assert (snapshot_tree(repo), tags(repo), git(repo, "rev-parse", "HEAD")) == before
    assert not stray_temps(repo)
    return result.stderr.splitlines()


def test_to_a_bare_version(in_prod):
    assert gm_ok("rollback", MODEL, "--to", V1).stdout.splitlines()[0] == f"Rolled back {MODEL} to {V1} (was {V3})"
    assert consistent(in_prod) == V1


def test_to_a_release_reference(in_prod):
    assert gm_ok("rollback", MODEL, "--to", f"{MODEL}@{V1}").stdout.splitlines()[0] == (
        f"Rolled back {MODEL} to {V1} (was {V3})")
    assert consistent(in_prod) == V1


def test_to_latest(in_prod):
    gm_ok("rollback", MODEL, "--to", V1)
    assert gm_ok("rollback", MODEL, "--to", f"{MODEL}@latest").stdout.splitlines()[0] == (
        f"Rolled back {MODEL} to {V3} (was {V1})")
    assert consistent(in_prod) == V3


def test_to_a_stage(in_prod):
    gm_ok("promote", MODEL, V1, "--stage", "staging")
    assert gm_ok("rollback", MODEL, "--to", f"{MODEL}#staging").stdout.splitlines()[0] == (
        f"Rolled back {MODEL} to {V1} (was {V3})")
    assert consistent(in_prod) == V1


def test_to_a_commit_that_holds_a_release(in_prod):
    sha = tag_commit(in_prod, f"{MODEL}@{V2}")
    assert gm_ok("rollback", MODEL, "--to", sha[:10]).stdout.splitlines()[0] == (
        f"Rolled back {MODEL} to {V2} (was {V3})")
    assert consistent(in_prod) == V2


def test_to_a_branch_at_a_release(in_prod):
    git(in_prod, "branch", "known-good", f"{MODEL}@{V1}")
    gm_ok("rollback", MODEL, "--to", "known-good")
    assert consistent(in_prod) == V1


def test_a_commit_without_a_release_is_refused(in_prod):
    (in_prod / "NOTES.md").write_text("notes\n")
    git(in_prod, "add", "NOTES.md")
    git(in_prod, "commit", "-q", "-m", "notes")
    sha = git(in_prod, "rev-parse", "HEAD").strip()
    assert refused(in_prod, "HEAD") == [
        f"Error: commit {sha[:12]} (HEAD) holds no release of {MODEL}; releases of {MODEL}: {V1}, {V2}, {V3}",
        f"  hint: name a release, e.g. `--to {V3}`"]


def test_the_workspace_is_refused(in_prod):
    assert refused(in_prod, "workspace") == [
        "Error: the workspace is not a release: name the release to restore",
        f"  hint: e.g. `--to v1.0.0`, `--to {MODEL}@latest` or a commit that holds a release"]


def test_another_models_reference_is_refused(in_prod):
    assert refused(in_prod, "chat@v1.0.0") == [
        f"Error: chat@v1.0.0 names model 'chat', not '{MODEL}'",
        f"  hint: name a release of {MODEL}, e.g. {MODEL}@latest"]


def test_a_stage_nothing_holds_is_refused(in_prod):
    assert refused(in_prod, f"{MODEL}#staging")[0] == (
        f"Error: {MODEL}#staging: no version of '{MODEL}' holds stage 'staging'; stages of {MODEL}: prod")


def test_an_unknown_revision_is_refused_with_the_closest_names(in_prod):
    assert refused(in_prod, "sentiment@v1.2")[0] == "Error: sentiment@v1.2: 'v1.2' is not a SemVer version like v1.2.0"
    assert refused(in_prod, "mian")[0] == "Error: unknown revision 'mian'; did you mean 'main'?"


def test_a_deregistered_release_is_refused(in_prod):
    git(in_prod, "tag", "-a", f"{MODEL}@{V1}!", "-m", "Deregistering", tag_commit(in_prod, f"{MODEL}@{V1}"))
    assert refused(in_prod, f"{MODEL}@{V1}") == [
        f"Error: release {MODEL}@{V1} was deregistered; releases of {MODEL}: {V2}, {V3}"]
