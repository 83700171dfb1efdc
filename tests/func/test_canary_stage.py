"""The canary is gated like prod, a canary above half the traffic is a cut-over, and `end` withdraws a
stage with GTO's unassignment tag, read back by `gto show`, `status` and `log`.

The `released` fixture: ONE model, `sentiment`, released as v1.0.0 (demo v1 weights), v1.2.0 (v2: passes
the gate against v1) and v1.10.0 (v3: fails it).
"""
from __future__ import annotations

import json

from tests.conftest import snapshot_tree
from tests.func.stagekit import MODEL, gm, gm_ok, gto_stages, tag_commit, tag_message, tags

V1, V2, V3 = "v1.0.0", "v1.2.0", "v1.10.0"


def trailers(message: str) -> dict[str, str]:
    from gitmodel.refs import parse_trailers

    return parse_trailers(message)


def test_the_canary_gate_refuses_a_failing_version(released):
    gm_ok("promote", MODEL, V2, "--stage", "prod")
    before_tags, before_files = tags(released), snapshot_tree(released)
    result = gm("promote", MODEL, V3, "--stage", "canary", "--fraction", "0.1")
    assert result.exit_code == 1
    assert result.stdout.splitlines()[0] == \
        f"Gate: {MODEL} on sentiment: candidate {MODEL}@{V3} vs baseline {MODEL}#prod ({MODEL}@{V2})"
    assert result.stderr.splitlines()[0].startswith(f"Refused: {MODEL}@{V3} did not pass the gate against {MODEL}#prod")
    assert tags(released) == before_tags and snapshot_tree(released) == before_files
    assert gto_stages(released) == {"prod": V2}


def test_accept_risk_puts_a_failing_version_on_canary_with_the_rationale(released):
    gm_ok("promote", MODEL, V2, "--stage", "prod")
    gm_ok("promote", MODEL, V3, "--stage", "canary", "--fraction", "0.05", "--accept-risk", "shadow the new lexicon")
    t = trailers(tag_message(released, "sentiment#canary#2"))
    assert t["Accepted-Risk"] == "shadow the new lexicon"
    assert t["Gate"].startswith("failed against v1.2.0 (prod): sentiment: ")
    assert gto_stages(released) == {"prod": V2, "canary": V3}


def test_a_canary_above_half_the_traffic_asks_for_accept_risk(released):
    gm_ok("promote", MODEL, V1, "--stage", "prod")
    before = tags(released)
    result = gm("promote", MODEL, V2, "--stage", "canary", "--fraction", "0.6")
    assert result.exit_code == 3
    assert result.stderr.splitlines() == [
        "Error: --fraction 0.6 on canary sends most traffic to an unproven version: that is a cut-over, "
        "not a canary (a canary takes at most 0.5)",
        '  hint: use --fraction 0.5 or less, or give --accept-risk "why"']
    assert tags(released) == before
    gm_ok("promote", MODEL, V2, "--stage", "canary", "--fraction", "0.5")
    gm_ok("promote", MODEL, V2, "--stage", "canary", "--fraction", "0.9", "--accept-risk", "load test of the new pods")
    assert trailers(tag_message(released, "sentiment#canary#3"))["Fraction"] == "0.9"


def test_end_writes_the_unassignment_gto_reads_as_an_empty_stage(released):
    gm_ok("promote", MODEL, V1, "--stage", "prod")
    gm_ok("promote", MODEL, V2, "--stage", "canary", "--fraction", "0.1")
    result = gm_ok("end", MODEL, "--stage", "canary", "-m", "latency doubled on live traffic")
    assert result.stdout.splitlines() == [
        f"Ended canary of {MODEL}@{V2}: tag sentiment#canary!#3 on {tag_commit(released, f'{MODEL}@{V2}')[:12]}",
        "  canary is now empty",
        "Share it: git push origin sentiment#canary!#3"]
    message = tag_message(released, "sentiment#canary!#3")
    assert message.splitlines()[0] == f"Unassigning stage 'canary' to artifact '{MODEL}' version '{V2}'"
    assert trailers(message)["Message"] == "latency doubled on live traffic"
    assert gto_stages(released) == {"prod": V1}
    status = json.loads(gm_ok("status", "--json").stdout)
    assert set(status["models"][0]["stages"]) == {"prod"}
    entries = json.loads(gm_ok("log", MODEL, "--json").stdout)
    assert {e["version"]: e["stages"] for e in entries}[V2] == []


def test_end_also_withdraws_an_older_assignment_gto_would_hand_the_stage_back_to(released):
    """v1.0.0 took canary, then v1.2.0 did over it (v1.0.0's tag stands): ending canary must not give it
    back to v1.0.0."""
    gm_ok("promote", MODEL, V1, "--stage", "canary", "--fraction", "0.1")
    gm_ok("promote", MODEL, V2, "--stage", "canary", "--fraction", "0.1")
    result = gm_ok("end", MODEL, "--stage", "canary", "--json")
    doc = json.loads(result.stdout)
    assert doc["tags"] == ["sentiment#canary!#3", "sentiment#canary!#4"]
    assert doc["ended"] == [V2, V1] and doc["now"] is None
    assert gto_stages(released) == {}


def test_a_canary_promoted_to_prod_leaves_canary_so_a_rollback_does_not_revive_it(released):
    gm_ok("promote", MODEL, V1, "--stage", "prod")
    gm_ok("promote", MODEL, V2, "--stage", "canary", "--fraction", "0.1")
    result = gm_ok("promote", MODEL, V2, "--stage", "prod")
    assert f"  canary:   ended (sentiment#canary!#4): {V2} graduated to prod" in result.stdout.splitlines()
    assert trailers(tag_message(released, "sentiment#canary!#4"))["Message"] == "promoted to prod (sentiment#prod#3)"
    assert gto_stages(released) == {"prod": V2}
    gm_ok("rollback", MODEL)
    assert gto_stages(released) == {"prod": V1}


def test_end_of_prod_is_refused(released):
    gm_ok("promote", MODEL, V1, "--stage", "prod")
    before = tags(released)
    result = gm("end", MODEL, "--stage", "prod")
    assert result.exit_code == 3
    assert result.stderr.splitlines() == [
        f"Error: {MODEL}#prod cannot be ended: production would be left without a model",
        f"  hint: roll back (`git model rollback {MODEL}`) or promote another version to prod"]
    assert tags(released) == before


def test_end_of_an_empty_stage_is_refused(released):
    gm_ok("promote", MODEL, V1, "--stage", "prod")
    result = gm("end", MODEL, "--stage", "canary")
    assert result.exit_code == 3
    assert result.stderr.splitlines()[0] == f"Error: no version of {MODEL} holds stage 'canary': there is nothing to end"
