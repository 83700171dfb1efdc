"""`git model promote` on a real repository with real metrics: the GTO stage tag, its message, the gate
in front of prod, and what `gto show --json` and `dvc artifacts get --stage` then see.

The `released` fixture holds ONE model, `sentiment`, released three times: v1.0.0 (demo v1 weights),
v1.2.0 (v2: passes the gate against v1) and v1.10.0 (v3: fails it on accuracy and label distribution).
"""
from __future__ import annotations

import json
import re

import pytest

from tests.conftest import git, snapshot_tree
from tests.func.stagekit import (
    MODEL,
    add_remote,
    dvc_get_stage,
    gm,
    gm_ok,
    gto_stages,
    record_prod,
    release_md5,
    run,
    tag_commit,
    tag_message,
    tags,
    tool,
)

V1, V2, V3 = "v1.0.0", "v1.2.0", "v1.10.0"


def trailers(message: str) -> dict[str, str]:
    from gitmodel.refs import parse_trailers

    return parse_trailers(message)


def test_first_promotion_to_prod_has_no_holder_to_beat(released):
    result = gm_ok("promote", MODEL, V1, "--stage", "prod")
    assert tags(released, "sentiment#*") == ["sentiment#prod#1"]
    assert tag_commit(released, "sentiment#prod#1") == tag_commit(released, f"sentiment@{V1}")
    message = tag_message(released, "sentiment#prod#1")
    assert message.splitlines()[0] == f"Assigning stage prod to artifact {MODEL} version {V1}"
    t = trailers(message)
    assert t["Assigned-By"] == "Test Committer <committer@example.com>"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}[+-]\d\d:\d\d", t["Assigned-At"])
    assert t["Gate"] == "none: no version holds prod yet, so there is no holder to beat"
    assert "Fraction" not in t
    assert result.stdout.splitlines()[0] == (
        f"Promoted {MODEL}@{V1} to prod: tag sentiment#prod#1 on {tag_commit(released, 'sentiment#prod#1')[:12]}")
    assert gto_stages(released) == {"prod": V1}
    # a real `git model` process, as users run it, says the same
    status = json.loads(git(released, "model", "status", "--json"))
    assert status["models"][0]["stages"]["prod"]["version"] == V1


def test_promotion_through_the_gate_is_seen_by_gto_and_dvc_artifacts_get(released, tmp_path):
    add_remote(released)
    gm_ok("promote", MODEL, V1, "--stage", "prod")
    result = gm_ok("promote", MODEL, V2, "--stage", "prod")
    assert "  gate:     passed against v1.0.0 (prod) on sentiment" in result.stdout.splitlines()
    assert trailers(tag_message(released, "sentiment#prod#2"))["Gate"] == "passed against v1.0.0 (prod) on sentiment"
    # both promotions happened within a second or two: the tag times still order them
    assert gto_stages(released) == {"prod": V2}
    assert dvc_get_stage(released, "prod", tmp_path / "prod.gguf") == release_md5(released, V2)


def test_prod_promotion_that_fails_the_gate_is_refused_with_the_report(released):
    gm_ok("promote", MODEL, V2, "--stage", "prod")
    before_tags, before_files = tags(released), snapshot_tree(released)
    result = gm("promote", MODEL, V3, "--stage", "prod")
    assert result.exit_code == 1
    out = result.stdout.splitlines()
    # the report `git model gate` prints, every metric with baseline, candidate, change, rule, verdict
    assert out[0] == f"Gate: {MODEL} on sentiment: candidate {MODEL}@{V3} vs baseline {MODEL}#prod ({MODEL}@{V2})"
    assert any(re.match(r"accuracy +0\.925 +0\.84 +-0\.085 +>= baseline - 0 \(worse by 0\.085 > 0 allowed\) +fail$", line)
               for line in out), out
    assert any(re.match(r"label_psi .* fail$", line) for line in out)
    assert any(re.match(r"labels\.positive\.fpr .* fail$", line) for line in out)
    assert out[-3].startswith(f"FAIL: {MODEL} on sentiment: 10 regressions: accuracy, ") and out[-2] == ""
    assert out[-1].startswith(f"NOT JUDGED: human review of {MODEL}: candidate not reviewed")
    gate = run(released, "git", "model", "gate", MODEL, "--candidate", f"{MODEL}@{V3}", check=False)
    assert gate.returncode == 1 and gate.stdout.splitlines() == out
    assert result.stderr.splitlines() == [
        f"Refused: {MODEL}@{V3} did not pass the gate against {MODEL}#prod ({V2}); nothing was written.",
        '  hint: promote anyway with --accept-risk "why this is acceptable"']
    assert tags(released) == before_tags
    assert snapshot_tree(released) == before_files
    assert gto_stages(released) == {"prod": V2}


def test_accept_risk_lets_a_failing_version_through_and_records_the_rationale(released, tmp_path):
    add_remote(released)
    gm_ok("promote", MODEL, V2, "--stage", "prod")
    why = "v3 fixes the outage on long inputs;\n the fpr regression is accepted until v3.1 (JIRA-42)"
    result = gm_ok("promote", MODEL, V3, "--stage", "prod", "--accept-risk", why)
    t = trailers(tag_message(released, "sentiment#prod#2"))
    assert t["Accepted-Risk"] == ("v3 fixes the outage on long inputs; the fpr regression is accepted until v3.1 "
                                  "(JIRA-42)")
    assert t["Gate"].startswith("failed against v1.2.0 (prod): sentiment: accuracy, ")
    assert "label_psi" in t["Gate"] and "labels.positive.fpr" in t["Gate"]
    assert "  accepted risk: v3 fixes the outage" in result.stdout
    assert gto_stages(released) == {"prod": V3}
    assert dvc_get_stage(released, "prod", tmp_path / "prod.gguf") == release_md5(released, V3)


def test_gate_accepted_tradeoff_from_params_lets_the_chosen_regression_through(released):
    """A tradeoff documented in params.yaml (gate.accept) covers exactly the metrics it names."""
    from ruamel.yaml import YAML

    gm_ok("promote", MODEL, V2, "--stage", "prod")
    params = released / "params.yaml"
    yaml = YAML()
    data = yaml.load(params.read_text())
    data.setdefault("gate", {})["accept"] = [{"metric": "*", "max_regression": 4.0,
                                              "rationale": "demo: v3 is a deliberate experiment"}]
    with params.open("w") as f:
        yaml.dump(data, f)
    result = gm_ok("promote", MODEL, V3, "--stage", "prod")
    gate = trailers(tag_message(released, "sentiment#prod#2"))["Gate"]
    assert gate.startswith("passed against v1.2.0 (prod) on sentiment (accepted tradeoffs: sentiment: accuracy")
    assert "gate:     passed" in result.stdout


def test_canary_records_the_fraction_and_the_gate(released):
    gm_ok("promote", MODEL, V1, "--stage", "prod")
    result = gm_ok("promote", MODEL, V2, "--stage", "canary", "--fraction", "0.1")
    assert "  fraction: 0.1" in result.stdout.splitlines()
    t = trailers(tag_message(released, "sentiment#canary#2"))
    assert t["Fraction"] == "0.1"
    assert t["Gate"] == "passed against v1.0.0 (prod) on sentiment"
    assert gto_stages(released) == {"prod": V1, "canary": V2}
    # a new fraction is a new assignment; the same one is nothing to do
    gm_ok("promote", MODEL, V2, "--stage", "canary", "--fraction", "0.5")
    assert trailers(tag_message(released, "sentiment#canary#3"))["Fraction"] == "0.5"
    again = gm_ok("promote", MODEL, V2, "--stage", "canary", "--fraction", "0.5")
    assert again.stdout == f"{MODEL}@{V2} already holds canary at fraction 0.5 (sentiment#canary#3): nothing to do.\n"
    assert tags(released, "sentiment#*") == ["sentiment#canary#2", "sentiment#canary#3", "sentiment#prod#1"]


def test_promoting_the_prod_version_again_is_nothing_to_do(released):
    gm_ok("promote", MODEL, V1, "--stage", "prod")
    result = gm_ok("promote", MODEL, "1.0.0", "--stage", "prod")
    assert result.stdout == f"{MODEL}@{V1} already holds prod (sentiment#prod#1): nothing to do.\n"
    assert tags(released, "sentiment#*") == ["sentiment#prod#1"]


def test_the_counter_is_one_past_the_highest_on_any_tag_of_the_model(released):
    """GTO's rule: stage tags, unassignments and deregistrations of the model all count; other models' do not."""
    commit = tag_commit(released, f"sentiment@{V1}")
    git(released, "tag", "-a", "sentiment#staging#4", "-m", "by gto", commit)
    git(released, "tag", "-a", f"sentiment@{V2}!#6", "-m", "deregistered by gto",
        tag_commit(released, f"sentiment@{V2}"))
    git(released, "tag", "-a", "other#prod#9", "-m", "another model", commit)
    gm_ok("promote", MODEL, V1, "--stage", "prod")
    assert "sentiment#prod#7" in tags(released)


def test_a_deregistered_release_cannot_be_promoted(released):
    git(released, "tag", "-a", f"sentiment@{V2}!#1", "-m", "deregistered", tag_commit(released, f"sentiment@{V2}"))
    result = gm("promote", MODEL, V2, "--stage", "prod")
    assert result.exit_code == 3
    assert result.stderr.splitlines()[0] == (
        f"Error: release sentiment@{V2} was deregistered; releases of sentiment: v1.0.0, v1.10.0")


@pytest.mark.parametrize("version", ["v2.0.0", "1.3.0"])
def test_unknown_version_names_the_existing_ones(released, version):
    before = tags(released)
    result = gm("promote", MODEL, version, "--stage", "prod")
    assert result.exit_code == 3
    shown = version if version.startswith("v") else f"v{version}"
    assert result.stderr.splitlines() == [
        f"Error: release sentiment@{shown} does not exist; releases of sentiment: v1.0.0, v1.2.0, v1.10.0"]
    assert tags(released) == before


def test_unknown_model_is_named(released):
    result = gm("promote", "sentimnet", V1, "--stage", "prod")
    assert result.exit_code == 3
    assert result.stderr.splitlines() == ["Error: model 'sentimnet' has no releases; did you mean 'sentiment'?",
                                          "  hint: release one first: git model release sentimnet v1.0.0"]


def test_a_prod_assignment_made_by_hand_is_the_baseline(released):
    """Stage tags written by gto (or by hand) count like ours: the gate runs against them."""
    record_prod(released, V2, 1)
    result = gm("promote", MODEL, V3, "--stage", "prod")
    assert result.exit_code == 1
    assert result.stdout.splitlines()[0] == \
        f"Gate: {MODEL} on sentiment: candidate {MODEL}@{V3} vs baseline {MODEL}#prod ({MODEL}@{V2})"


def test_gate_errors_block_prod_and_canary_but_are_recorded_for_other_stages(released):
    """A release evaluated on a newer eval set cannot be gated on stored metrics against prod: prod and canary are
    refused with the gate's error, staging records why the gate did not run, --rerun lets the gate
    evaluate the prod version on the new eval set."""
    gm_ok("promote", MODEL, V2, "--stage", "prod")
    evalset = released / "evalsets/sentiment.jsonl"
    evalset.write_text("".join(evalset.read_text().splitlines(keepends=True)[:300]))
    gm_ok("evalset", "add", "evalsets/sentiment.jsonl")
    gm_ok("eval", MODEL, "--evalset", "sentiment")
    git(released, "add", "-A")
    git(released, "commit", "-q", "-m", "v3 weights on a smaller eval set")
    gm_ok("release", MODEL, "v1.11.0")
    before = tags(released)
    result = gm("promote", MODEL, "v1.11.0", "--stage", "prod")
    assert result.exit_code == 3
    assert result.stderr.startswith("Error: cannot gate sentiment on eval set 'sentiment': ")
    assert tags(released) == before
    # canary serves real traffic: gated like prod, errors included
    result = gm("promote", MODEL, "v1.11.0", "--stage", "canary", "--fraction", "0.2")
    assert result.exit_code == 3
    assert result.stderr.startswith("Error: cannot gate sentiment on eval set 'sentiment': ")
    gm_ok("promote", MODEL, "v1.11.0", "--stage", "staging")
    assert trailers(tag_message(released, "sentiment#staging#2"))["Gate"].startswith(
        "not run: cannot gate sentiment on eval set 'sentiment': ")
    # --rerun: the prod version is evaluated on the candidate's eval set, then compared (v3 still loses)
    result = gm("promote", MODEL, "v1.11.0", "--stage", "prod", "--rerun")
    assert result.exit_code == 1
    out = result.stdout.splitlines()
    assert out[0] == f"Gate: {MODEL} on sentiment: candidate {MODEL}@v1.11.0 vs baseline {MODEL}#prod ({MODEL}@{V2})"
    assert out[1].startswith("  baseline re-evaluated on the candidate's eval set (")
    assert gto_stages(released) == {"prod": V2, "staging": "v1.11.0"}


def test_promoting_an_older_version_to_prod_points_at_rollback(released):
    gm_ok("promote", MODEL, V1, "--stage", "prod")
    gm_ok("promote", MODEL, V2, "--stage", "prod")
    result = gm("promote", MODEL, V1, "--stage", "prod")
    assert result.exit_code == 1
    assert result.stderr.splitlines()[-1] == (
        '  hint: promote anyway with --accept-risk "why this is acceptable"; to go back to an earlier version, '
        f"`git model rollback {MODEL} --to {V1}`")


# ----------------------------------------------------------------------------- GTO's event semantics, concurrency


def _after_the_last_tag(repo) -> None:
    """Let the clock pass the newest tag time: promote may date a tag a second ahead to keep stage tags
    in order, and gto dates its own tags by the clock."""
    import time

    newest = max(int(t) for t in git(repo, "for-each-ref", "refs/tags", "--format=%(creatordate:unix)").split())
    while time.time() < newest + 1:
        time.sleep(0.1)


@pytest.mark.slow
def test_gto_deprecate_of_the_prod_holder_hands_prod_back_to_the_previous_holder(released):
    """In R, `gto deprecate sentiment <v2> prod` writes `sentiment#prod!#4`: gto says the v1 release holds
    prod again, and so do `status`, `show`, `gate` and `promote`, which gates v3 against v1 (not against
    nothing) and refuses it."""
    gm_ok("promote", MODEL, V1, "--stage", "prod")
    gm_ok("promote", MODEL, V2, "--stage", "prod")
    gm_ok("promote", MODEL, V3, "--stage", "canary", "--fraction", "0.1", "--accept-risk", "watched closely")
    _after_the_last_tag(released)
    run(released, tool("gto"), "deprecate", MODEL, V2, "prod")
    assert tags(released, "sentiment#prod!*") == ["sentiment#prod!#4"]
    assert run(released, tool("gto"), "show", f"{MODEL}#prod", "--ref").stdout.split() == [f"{MODEL}@{V1}"]
    status = json.loads(gm_ok("status", "--json").stdout)
    assert status["models"][0]["stages"]["prod"]["version"] == V1
    shown = json.loads(gm_ok("show", f"{MODEL}#prod", "--json").stdout)
    assert shown["commit"] == tag_commit(released, f"sentiment@{V1}")
    gate = gm("gate", MODEL, "--candidate", f"{MODEL}@{V3}")
    assert f"baseline sentiment#prod (sentiment@{V1})" in gate.stdout and gate.exit_code == 1
    before = tags(released)
    result = gm("promote", MODEL, V3, "--stage", "prod")
    assert result.exit_code == 1, result.output
    assert result.stderr.startswith(
        f"Refused: sentiment@{V3} did not pass the gate against sentiment#prod ({V1}); nothing was written.")
    assert tags(released) == before


@pytest.mark.slow
def test_an_unassigned_prod_holder_does_not_open_the_gate(released):
    """prod v2 -> v1 (a risk accepted), then `gto deprecate sentiment <v1> prod`: prod goes back to v2, and
    v3, which fails the gate against v2, is refused -- not let through as if no version held prod."""
    gm_ok("promote", MODEL, V2, "--stage", "prod")
    gm_ok("promote", MODEL, V1, "--stage", "prod", "--accept-risk", "a test of the unassignment")
    _after_the_last_tag(released)
    run(released, tool("gto"), "deprecate", MODEL, V1, "prod")
    assert gto_stages(released) == {"prod": V2}
    before = tags(released)
    result = gm("promote", MODEL, V3, "--stage", "prod")
    assert result.exit_code == 1, result.output
    assert f"vs baseline sentiment#prod (sentiment@{V2})" in result.stdout and tags(released) == before


@pytest.mark.slow
def test_concurrent_promotions_take_distinct_counters(released):
    """Two `git model promote` processes at once: each tag gets its own counter (taken under the lock)."""
    import subprocess

    procs = [subprocess.Popen([tool("git-model"), "promote", MODEL, version, "--stage", stage, *extra, "--wait", "60"],
                              cwd=released, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for version, stage, extra in [(V2, "staging", []), (V3, "canary", ["--fraction", "0.1"]),
                                           (V1, "qa", [])]]
    outcomes = [(p.wait(), *p.communicate()) for p in procs]
    assert all(code == 0 for code, _, _ in outcomes), outcomes
    stage_tags = tags(released, "sentiment#*")
    assert sorted(int(t.rsplit("#", 1)[1]) for t in stage_tags) == [1, 2, 3], stage_tags
    assert gto_stages(released) == {"staging": V2, "canary": V3, "qa": V1}
