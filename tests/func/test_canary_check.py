"""`git model canary-check` on a real registry: each verdict from a constructed log, --apply, and the
log a real server wrote.

The `released` fixture: ONE model, `sentiment`, released as v1.0.0 (demo v1 weights), v1.2.0 (v2) and
v1.10.0 (v3, biased toward "positive").
"""
from __future__ import annotations

import json
import os
import random
import subprocess
from datetime import datetime, timedelta, timezone

import pytest

from gitmodel import prodlog
from tests.conftest import git
from tests.func.servekit import Server
from tests.func.stagekit import MODEL, gm, gm_ok, gto_stages, tags

pytestmark = pytest.mark.slow

V1, V2, V3 = "v1.0.0", "v1.2.0", "v1.10.0"


BACK = 40.0     # hours: the fixture's stage tags are dated this far back, so that the log is of the past


def backdate(repo, hours: float) -> None:
    """Re-date the model's stage tags ``hours`` back (same messages and order): a log of a watched canary
    is of the past, and the log reader refuses records from the future."""
    listing = git(repo, "for-each-ref", f"refs/tags/{MODEL}#*", "--format=%(refname:short)%00%(taggerdate:unix)")
    for line in listing.splitlines():
        tag, when = line.split("\0")
        message = git(repo, "for-each-ref", f"refs/tags/{tag}", "--format=%(contents)")
        commit = git(repo, "rev-parse", f"{tag}^{{commit}}").strip()
        subprocess.run(["git", "-C", str(repo), "tag", "-f", "-a", "--cleanup=verbatim", tag, "-F", "-", commit],
                       input=message, text=True, check=True, capture_output=True,
                       env={**os.environ, "GIT_COMMITTER_DATE": f"{int(when) - int(hours * 3600)} +0000"})


def write_log(folder, arms: dict[tuple[str, str], dict], hours: float = 30.0) -> None:
    """Records of each (version, stage) arm from two seconds after the (backdated) assignments, over ``hours``."""
    start = datetime.now(timezone.utc) - timedelta(hours=BACK) + timedelta(seconds=2)
    with prodlog.LogWriter(folder, MODEL) as writer:
        for (version, stage), spec in arms.items():
            rng = random.Random(f"{version}{stage}")
            n = spec["n"]
            for i in range(n):
                label = "positive" if rng.random() < spec.get("positive", 0.5) else "negative"
                failed = rng.random() < spec.get("errors", 0.0)
                writer.write(prodlog.make_record(
                    model=MODEL, version=version, stage=stage, input="the soup was cold",
                    output="" if failed else f" {label}", label=None if failed else label,
                    latency_ms=20 + rng.random(), status=500 if failed else 200,
                    ts=prodlog.timestamp(start + timedelta(hours=hours * i / (n - 1)))))


@pytest.fixture
def on_canary(released):
    gm_ok("promote", MODEL, V1, "--stage", "prod")
    gm_ok("promote", MODEL, V2, "--stage", "canary", "--fraction", "0.1")
    backdate(released, BACK)
    return released


def test_promote_verdict_and_apply_promotes_through_the_gate(on_canary, tmp_path):
    write_log(tmp_path / "logs", {(V1, "prod"): {"n": 900}, (V2, "canary"): {"n": 300}})
    result = gm_ok("canary-check", MODEL, "--log", str(tmp_path / "logs"))
    out = result.stdout.splitlines()
    assert out[0].startswith(f"Canary check: {MODEL}: canary {V2} at 0.1 of traffic vs prod {V1}, since ")
    assert any(line.split()[:3] == ["requests", "900", "300"] for line in out), out
    assert "Verdict: promote" in out
    assert f"  next: git model promote {MODEL} {V2} --stage prod   (or canary-check --apply)" in out
    doc = json.loads(gm_ok("canary-check", MODEL, "--log", str(tmp_path / "logs"), "--json").stdout)
    assert doc["verdict"] == "promote" and doc["canary"]["requests"] == 300 and doc["prod"]["requests"] == 900
    assert doc["hours_watched"] == pytest.approx(30.0, abs=0.01)
    assert {s["signal"]: s["band"] for s in doc["signals"]}["output.label"] == "stable"
    applied = gm_ok("canary-check", MODEL, "--log", str(tmp_path / "logs"), "--apply")
    assert applied.stdout.splitlines()[-1].startswith("Applied: promote (sentiment#prod#3")
    assert gto_stages(on_canary) == {"prod": V2}


def test_end_verdict_exits_1_and_apply_ends_the_canary(on_canary, tmp_path):
    write_log(tmp_path / "logs", {(V1, "prod"): {"n": 900}, (V2, "canary"): {"n": 300, "positive": 0.95}})
    before = tags(on_canary)
    result = gm("canary-check", MODEL, "--log", str(tmp_path / "logs"))
    assert result.exit_code == 1
    assert "Verdict: end" in result.stdout.splitlines()
    assert tags(on_canary) == before      # no --apply: nothing written
    md = gm("canary-check", MODEL, "--log", str(tmp_path / "logs"), "--md")
    assert md.exit_code == 1 and md.stdout.startswith(f"### Canary check: {MODEL}: **end**")
    applied = gm("canary-check", MODEL, "--log", str(tmp_path / "logs"), "--apply")
    assert applied.exit_code == 1
    assert applied.stdout.splitlines()[-1] == "Applied: end (sentiment#canary!#3)"
    assert gto_stages(on_canary) == {"prod": V1}
    message = git(on_canary, "for-each-ref", "refs/tags/sentiment#canary!#3", "--format=%(contents)")
    assert "Message: canary-check: output.label: PSI " in message


def test_keep_watching_is_said_plainly_and_exits_0(on_canary, tmp_path):
    write_log(tmp_path / "logs", {(V1, "prod"): {"n": 300}, (V2, "canary"): {"n": 40}}, hours=3)
    result = gm_ok("canary-check", MODEL, "--log", str(tmp_path / "logs"), "--apply")
    out = result.stdout.splitlines()
    assert "Verdict: keep watching" in out
    assert "  - watched 3.0 h of the 24 h required" in out
    assert "  - canary: 40 requests of the 200 required" in out
    assert gto_stages(on_canary) == {"prod": V1, "canary": V2}


def test_without_a_canary_there_is_nothing_to_check(released, tmp_path):
    gm_ok("promote", MODEL, V1, "--stage", "prod")
    write_log(tmp_path / "logs", {(V1, "prod"): {"n": 10}})
    result = gm("canary-check", MODEL, "--log", str(tmp_path / "logs"))
    assert result.exit_code == 3
    assert result.stderr.splitlines()[0] == f"Error: no release of {MODEL} holds canary: there is nothing to check"


def test_canary_check_reads_the_log_the_server_wrote(released, demo_dir, tmp_path):
    """v3 (biased toward positive) on canary for half the traffic, against v2 in prod, on the eval inputs
    sent by 400 users: canary-check's figures are those of the server's log lines."""
    from collections import Counter

    from gitmodel import drift

    gm_ok("promote", MODEL, V2, "--stage", "prod")
    gm_ok("promote", MODEL, V3, "--stage", "canary", "--fraction", "0.5", "--accept-risk", "see it on live traffic")
    (released / "params.yaml").write_text((released / "params.yaml").read_text() +
                                          "canary:\n  min_hours: 0\n  min_requests: 50\n")
    prompts = [json.loads(line)["input"] for line in (demo_dir / "sentiment.jsonl").read_text().splitlines()]
    with Server(released, MODEL, log_dir=tmp_path / "logs") as server:
        client = server.client()
        for i, prompt in enumerate(prompts):
            assert client.complete(prompt, user=f"user-{i}").status == 200
    result = gm("canary-check", MODEL, "--log", str(tmp_path / "logs"), "--json")
    doc = json.loads(result.stdout)
    lines = [json.loads(line) for f in (tmp_path / "logs").iterdir() for line in f.read_text().splitlines()]
    labels = {stage: Counter(r["label"] for r in lines if r["stage"] == stage) for stage in ("prod", "canary")}
    assert doc["prod"]["requests"] == sum(labels["prod"].values()) and doc["prod"]["version"] == V2
    assert doc["canary"]["requests"] == sum(labels["canary"].values()) and doc["canary"]["version"] == V3
    assert doc["prod"]["requests"] + doc["canary"]["requests"] == len(prompts) and doc["log"]["malformed"] == 0
    label = {s["signal"]: s for s in doc["signals"]}["output.label"]
    assert label["psi"] == drift.measure_counts(labels["prod"], labels["canary"]).value
    share = {stage: labels[stage]["positive"] / sum(labels[stage].values()) for stage in labels}
    assert share["canary"] > share["prod"]      # v3's bias, seen on served traffic
    assert result.exit_code == (1 if doc["verdict"] == "end" else 0)
