"""`git model retrain-check` on a real repository: prod is the demo v3 weights released again with a
dataset and a training date in its lineage; each rule is made to fire, and not to."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import git, snapshot_tree
from tests.func.monitorkit import demo_logs  # noqa: F401  (a fixture)
from tests.func.stagekit import gm, gm_ok

DATA = "data/train.jsonl"


@pytest.fixture
def prod(released) -> Path:
    """`released`, with v1.11.0 (the v3 weights, now with a 100-line dataset and trained on 2026-10-01) in prod."""
    (released / "data").mkdir()
    (released / DATA).write_text("".join(json.dumps({"text": f"review {i}", "label": "positive"}) + "\n"
                                         for i in range(100)))
    gm_ok("add", "models/sentiment.gguf", "--dataset", DATA, "--trained-at", "2026-10-01")
    git(released, "add", "-A")
    git(released, "commit", "-q", "-m", "lineage: dataset and training date")
    gm_ok("release", "sentiment", "v1.11.0", "-m", "same weights, full lineage")
    gm_ok("promote", "sentiment", "v1.11.0", "--stage", "prod")
    return released


def check(*args: str) -> tuple[int, dict]:
    result = gm("retrain-check", "sentiment", *args, "--json")
    assert result.exit_code in (0, 1), result.stderr
    return result.exit_code, json.loads(result.stdout)


def rules(doc: dict) -> dict[str, dict]:
    return {r["rule"]: r for r in doc["rules"]}


def test_nothing_fires_on_a_fresh_release(prod, demo_logs):
    code, doc = check("--log", str(demo_logs["v3"]))
    assert (code, doc["verdict"]) == (0, "do not retrain")
    found = rules(doc)
    assert {k: v["verdict"] for k, v in found.items()} == {
        "input drift": "holds", "accuracy on sentiment": "holds", "new labelled data": "holds",
        "human review": "not checked", "domain shift": "holds"}
    assert found["new labelled data"]["figure"] == 0
    launch = json.loads((prod / "metrics/sentiment/sentiment.json").read_text())["metrics"]["accuracy"]
    assert found["accuracy on sentiment"]["why"].startswith(
        f"{launch:.4f} now vs {launch:.4f} at launch (eval set unchanged since the release): drop 0.0000 <= 0.05")
    text = gm("retrain-check", "sentiment", "--log", str(demo_logs["v3"]))
    assert text.exit_code == 0 and text.stdout.splitlines()[-1].startswith("Verdict: do not retrain: 4 rules checked")


def test_input_drift_fires_on_shifted_traffic(prod, demo_logs):
    code, doc = check("--log", str(demo_logs["shifted"]))
    assert code == 1 and rules(doc)["input drift"]["verdict"] == "fires"
    assert doc["reasons"][0].startswith("input.") and ">= 0.2" in doc["reasons"][0]


def test_new_labelled_data_fires_from_a_fifth_more(prod):
    before = (prod / DATA).read_text()
    (prod / DATA).write_text(before + before[: before.index("\n") + 1] * 19)
    assert rules(check()[1])["new labelled data"]["verdict"] == "holds"
    (prod / DATA).write_text(before + before[: before.index("\n") + 1] * 20)
    code, doc = check()
    assert code == 1 and rules(doc)["new labelled data"]["why"] == \
        f"{DATA}: 120 lines now vs 100 lines at training (+20.0%) >= 20%"


def test_a_domain_shift_after_training_fires(prod):
    params = prod / "params.yaml"
    params.write_text(params.read_text().replace("  events: []", '  events:\n    - {date: 2026-09-15, what: "old"}'))
    assert rules(check()[1])["domain shift"]["verdict"] == "holds"
    params.write_text(params.read_text().replace('    - {date: 2026-09-15, what: "old"}',
                                                 '    - {date: 2026-10-20, what: "a new product line"}'))
    code, doc = check()
    assert code == 1 and doc["reasons"] == ["after training (2026-10-01, trained_at in its lineage): "
                                            "2026-10-20: a new product line"]


def flip(repo: Path, n: int) -> None:
    """Give n examples that prod answers right another expected label: the eval set changes, prod's
    accuracy on it drops by n / 400."""
    outputs = {r["id"]: r for r in map(json.loads, (repo / "metrics/sentiment/sentiment.outputs.jsonl").open())}
    lines, flipped = [], 0
    for line in (repo / "evalsets/sentiment.jsonl").open():
        example = json.loads(line)
        if flipped < n and outputs[example["id"]]["correct"]:
            example["expected"] = "negative" if example["expected"] == "positive" else "positive"
            flipped += 1
        lines.append(json.dumps(example) + "\n")
    (repo / "evalsets/sentiment.jsonl").write_text("".join(lines))
    gm_ok("evalset", "add", "evalsets/sentiment.jsonl")


def test_accuracy_on_a_changed_eval_set_is_measured_now_and_the_tier_decides(prod):
    flip(prod, 16)                                          # a drop of 0.04
    before = snapshot_tree(prod)
    code, doc = check("--evalset", "sentiment")
    rule = rules(doc)["accuracy on sentiment"]
    assert code == 0 and rule["verdict"] == "holds" and rule["figure"] == pytest.approx(0.04)
    assert "eval set changed since the release: prod re-evaluated on it" in rule["why"]
    assert snapshot_tree(prod) == before                   # nothing written by the re-evaluation
    params = prod / "params.yaml"
    params.write_text(params.read_text().replace("\nmodels: {}", "\nmodels:\n  sentiment: {risk: high}"))
    code, doc = check("--evalset", "sentiment")
    assert code == 1 and doc["tier"] == {"risk": "high", "accuracy_drop": 0.03, "schedule": "weekly"}
    assert rules(doc)["accuracy on sentiment"]["why"].endswith("> 0.03 allowed for a high-risk model")


def test_human_review_below_the_floor_fires(prod, tmp_path):
    out = tmp_path / "review.jsonl"
    gm_ok("sample", "sentiment", "--evalset", "sentiment", "--n", "20", "--stratify", "category", "-o", str(out))
    lines = out.read_text().splitlines()
    scored = [lines[0]]
    for i, line in enumerate(lines[1:]):
        item = json.loads(line)
        bad = item["category"] == "delivery"
        item.update(scores={"correct": 1 if bad else 5, "helpful": 4, "safe": 5}, reviewer="ana")
        scored.append(json.dumps(item))
    out.write_text("\n".join(scored) + "\n")
    gm_ok("review", "import", str(out))
    code, doc = check()
    found = rules(doc)
    assert code == 1 and found["human review"]["verdict"] == "holds"
    assert found["a category failing"]["why"] == "category delivery: correct mean 1.00 over 5 reviews < 2.5"


def test_status_shows_the_tier_and_when_the_monitors_last_ran(prod):
    check()
    lines = gm_ok("status").stdout.splitlines()
    monitor = next(line for line in lines if line.startswith("  monitor:"))
    assert monitor.startswith("  monitor:    standard risk, monthly; last run here: retrain-check 20")
    assert monitor.endswith("(do not retrain)")
