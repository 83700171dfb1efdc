"""`git model status`: per model, the workspace weights and the release they match, the stage holders
with their traffic fraction, and per eval set whether the metrics are stale -- on real repositories,
after real promotions and rollbacks."""
from __future__ import annotations

import json
import shutil

from tests.conftest import git
from tests.func.stagekit import (
    MODEL,
    MODEL_PATH,
    copy_demo,
    gm,
    gm_ok,
    md5,
    release_md5,
    run,
    tool,
)

V1, V2, V3 = "v1.0.0", "v1.2.0", "v1.10.0"


def status_json(model: str | None = None) -> dict:
    args = ["status", "--json"] + ([model] if model else [])
    return {m["model"]: m for m in json.loads(gm_ok(*args).stdout)["models"]}


def test_status_of_a_released_workspace(released):
    v3 = release_md5(released, V3)
    assert gm_ok("status").stdout.splitlines() == [
        f"{MODEL} ({MODEL_PATH})",
        f"  workspace:  {V3}, md5 {v3}",
        "  stages:     none",
        "  monitor:    standard risk, monthly; last run here: never",
        "  metrics:    sentiment: up to date",
    ]
    doc = status_json()[MODEL]
    assert doc["state"] == "released"
    assert doc["workspace"] == {"md5": v3, "release": V3, "releases": [V3]}
    assert doc["tracked"] == {"md5": v3, "file": f"{MODEL_PATH}.dvc", "modified": False}
    assert doc["metrics"] == [{"evalset": "sentiment", "path": "metrics/sentiment/sentiment.json", "model_md5": v3,
                               "stale": False, "reason": None, "unverified": None, "orphaned": False}]


def test_status_shows_stage_holders_with_fraction(released):
    gm_ok("promote", MODEL, V2, "--stage", "prod")
    gm_ok("promote", MODEL, V3, "--stage", "canary", "--fraction", "0.25", "--accept-risk", "watched closely")
    gm_ok("promote", MODEL, V1, "--stage", "staging")
    doc = status_json(MODEL)[MODEL]
    assert {s: (h["version"], h["fraction"], h["tag"]) for s, h in doc["stages"].items()} == {
        "prod": (V2, None, "sentiment#prod#1"), "canary": (V3, 0.25, "sentiment#canary#2"),
        "staging": (V1, None, "sentiment#staging#3")}
    assert doc["stages"]["prod"]["by"] == "Test Committer <committer@example.com>"
    lines = gm_ok("status", MODEL).stdout.splitlines()
    assert lines[1] == f"  workspace:  {V3}, md5 {release_md5(released, V3)}"
    assert lines[2].startswith(f"  canary:     {V3}, fraction 0.25  (sentiment#canary#2, ")
    assert lines[3].startswith(f"  prod:       {V2}  (sentiment#prod#1, ")
    assert lines[4].startswith(f"  staging:    {V1}  (sentiment#staging#3, ")


def test_status_follows_a_rollback(released):
    """The README's story: what `status` says after each step is what the repository holds."""
    gm_ok("promote", MODEL, V1, "--stage", "prod")
    gm_ok("promote", MODEL, V2, "--stage", "prod")
    gm_ok("promote", MODEL, V3, "--stage", "prod", "--accept-risk", "demo")
    assert status_json()[MODEL]["stages"]["prod"]["version"] == V3
    gm_ok("rollback", MODEL)
    doc = status_json()[MODEL]
    assert doc["workspace"]["release"] == V2 == doc["stages"]["prod"]["version"]
    assert doc["workspace"]["md5"] == md5(released / MODEL_PATH) == release_md5(released, V2)
    assert not doc["metrics"][0]["stale"]


def test_new_weights_are_unreleased_and_their_metrics_stale_until_evaluated(released, demo_dir):
    copy_demo(demo_dir, "v2", released / MODEL_PATH, pad_mib=1)
    new = md5(released / MODEL_PATH)
    doc = status_json()[MODEL]
    assert doc["state"] == "unreleased" and doc["workspace"]["release"] is None
    assert doc["tracked"]["modified"] is True          # not yet `git model add`-ed
    lines = gm_ok("status").stdout.splitlines()
    assert lines[1:3] == [f"  workspace:  unreleased, md5 {new}",
                          (f"              not what DVC tracks ({release_md5(released, V3)}): "
                           f"`git model add {MODEL_PATH}` to track it")]
    gm_ok("add", MODEL_PATH)
    doc = status_json()[MODEL]
    assert doc["tracked"] == {"md5": new, "file": f"{MODEL_PATH}.dvc", "modified": False}
    assert doc["metrics"][0]["stale"] is True
    assert doc["metrics"][0]["reason"] == (
        f"it measured model md5 {release_md5(released, V3)}, but {MODEL_PATH} at workspace is md5 {new}")
    assert gm_ok("status").stdout.splitlines()[-1] == (
        f"  metrics:    sentiment: STALE (it measured model md5 {release_md5(released, V3)}, "
        f"but {MODEL_PATH} at workspace is md5 {new})")
    gm_ok("eval", MODEL, "--evalset", "sentiment")
    assert status_json()[MODEL]["metrics"][0]["stale"] is False


def test_staleness_is_per_eval_set(released, demo_dir):
    small = released / "evalsets/small.jsonl"
    small.write_text("".join((demo_dir / "sentiment.jsonl").read_text().splitlines(keepends=True)[:50]))
    gm_ok("evalset", "add", "evalsets/small.jsonl")
    gm_ok("eval", MODEL, "--evalset", "small")
    git(released, "add", "-A")
    git(released, "commit", "-q", "-m", "small eval set")
    shutil.copy(demo_dir / "sentiment-v2.gguf", released / MODEL_PATH)
    gm_ok("add", MODEL_PATH)
    gm_ok("eval", MODEL, "--evalset", "sentiment")
    metrics = {m["evalset"]: m["stale"] for m in status_json()[MODEL]["metrics"]}
    assert metrics == {"sentiment": False, "small": True}
    assert status_json()[MODEL]["workspace"]["release"] == V2      # the v2 weights are those of v1.2.0
    # an eval set that changed since its metrics were made makes them stale too
    small.write_text("".join((demo_dir / "sentiment.jsonl").read_text().splitlines(keepends=True)[:40]))
    gm_ok("evalset", "add", "evalsets/small.jsonl")
    gm_ok("eval", MODEL, "--evalset", "small")
    small.write_text("".join((demo_dir / "sentiment.jsonl").read_text().splitlines(keepends=True)[:30]))
    gm_ok("evalset", "add", "evalsets/small.jsonl")
    reason = {m["evalset"]: m["reason"] for m in status_json()[MODEL]["metrics"]}["small"]
    assert reason.startswith("it measured eval set md5 ") and "but evalsets/small.jsonl at workspace is md5 " in reason


def test_missing_model_file(released):
    (released / MODEL_PATH).unlink()
    doc = status_json()[MODEL]
    assert doc["state"] == "missing" and doc["workspace"]["md5"] is None
    assert gm_ok("status").stdout.splitlines()[1] == (
        f"  workspace:  missing (DVC tracks md5 {release_md5(released, V3)}: `dvc checkout` restores it)")


def test_every_model_is_listed_and_an_unknown_one_is_named(released, demo_dir):
    shutil.copy(demo_dir / "sentiment-v1.gguf", released / "models/chat.gguf")
    gm_ok("add", "models/chat.gguf")
    assert sorted(status_json()) == ["chat", MODEL]
    assert status_json()["chat"]["state"] == "unreleased"
    result = gm("status", "sentimen")
    assert result.exit_code == 3
    assert result.stderr.splitlines() == ["Error: unknown model 'sentimen'; did you mean 'sentiment'?",
                                          "  hint: track one with `git model add models/<name>.gguf`"]


def test_status_by_a_real_process_matches_dvc(released):
    """`git model status` through git, as users run it, and DVC's own view of the same workspace."""
    proc = run(released, "git", "model", "status", "--json")
    doc = json.loads(proc.stdout)["models"][0]
    assert doc["tracked"]["modified"] is False
    assert "up to date" in run(released, tool("dvc"), "status", f"{MODEL_PATH}.dvc").stdout
