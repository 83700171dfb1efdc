"""`git model gate` on a real repository: one model, `sentiment`, released with the demo v1, v2 and v3
weights (the `released` fixture), real metrics from `git model eval`, prod stages as GTO tags."""
from __future__ import annotations

import json
import shutil
import time

import pytest
from ruamel.yaml import YAML

from gitmodel import gating
from gitmodel.cli import cli
from tests.conftest import git, snapshot_tree
from tests.func.stagekit import record_prod

V1, V2, V3 = "v1.0.0", "v1.2.0", "v1.10.0"   # demo v1, v2, v3 weights (tests/conftest.py RELEASES)
EVALSET = "evalsets/sentiment.jsonl"
METRICS = "metrics/sentiment/sentiment.json"


def prod(repo, version: str, counter: int) -> None:
    """A prod assignment as GTO writes it, made with git directly, one second after the previous one
    (GTO orders stage tags by time, not by counter)."""
    record_prod(repo, version, counter, when=int(time.time()) + counter)


def set_gate(repo, section: dict) -> None:
    yaml = YAML(typ="safe", pure=True)
    path = repo / "params.yaml"
    data = yaml.load(path.read_text())
    data["gate"] = section
    with open(path, "w") as f:
        yaml.dump(data, f)


def verdict(lines: list[str]) -> str:
    """The eval set's verdict line (the human review's section follows it)."""
    return next(line for line in reversed(lines) if line.startswith(("PASS: sentiment on", "FAIL: sentiment on")))


def gate(runner, *args):
    return runner.invoke(cli, ["gate", "sentiment", *args], prog_name="git model")


def test_v2_passes_the_gate_against_v1(released, runner):
    prod(released, V1, 1)
    result = gate(runner, "--candidate", f"sentiment@{V2}")
    assert result.exit_code == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == f"Gate: sentiment on sentiment: candidate sentiment@{V2} vs baseline sentiment#prod (sentiment@{V1})"
    assert lines[1].split() == ["Metric", "Baseline", "Candidate", "Change", "Rule", "Verdict"]
    row = next(line for line in lines if line.startswith("accuracy "))
    # v1 scores 90 examples with both labels equal: ties are never correct, so v1's accuracy is 0.635
    assert row.split() == ["accuracy", "0.635", "0.925", "+0.29", ">=", "baseline", "-", "0", "pass"]
    assert verdict(lines).startswith("PASS: sentiment on sentiment: all ")
    assert verdict(lines).endswith(" gated metrics meet or beat the baseline")
    assert lines[-1] == ("NOT JUDGED: human review of sentiment: candidate not reviewed: no review imported "
                         "(gate.require_review: true would refuse it)")
    # what promote calls
    results = gating.gate_candidate("sentiment", baseline="sentiment#prod", candidate=f"sentiment@{V2}").reports
    assert [(r.evalset, r.passed, r.rerun, r.failed_metrics) for r in results] == [("sentiment", True, False, [])]
    verdicts = {row.metric: row.verdict for row in results[0].rows}
    assert verdicts["accuracy"] == verdicts["label_psi"] == verdicts["latency_ms.p95"] == "pass"
    assert verdicts["n"] == verdicts["label_distribution.positive"] == verdicts["confidence.mean"] == "info"
    # calibration is gated, confidence only monitored; the outputs' distributions are gated by PSI
    assert verdicts["calibration.ece"] == "pass"
    assert {k: v for k, v in verdicts.items() if k.startswith("output_psi.")} == {
        "output_psi.label": "pass", "output_psi.confidence": "pass", "output_psi.output_tokens": "pass"}


def test_v3_fails_the_gate_on_accuracy_and_label_distribution(released, runner):
    prod(released, V1, 1)
    prod(released, V2, 2)
    result = gate(runner)   # candidate: the workspace, which holds v3 and its metrics
    assert result.exit_code == 1, result.stdout + result.stderr
    assert result.stderr == ""
    last = verdict(result.stdout.splitlines())
    assert last.startswith("FAIL: sentiment on sentiment: ")
    failed = last.split(": ", 3)[-1].split(", ")
    assert {"accuracy", "label_psi", "labels.positive.fpr"} <= set(failed)
    assert "latency_ms.p50" not in failed and "n" not in failed
    data = json.loads(gate(runner, "--json").stdout)
    assert data["passed"] is False and data["baseline"] == f"sentiment#prod (sentiment@{V2})"
    # one result type for the command and a promotion: the status and the one line a promotion's tag records
    assert data["status"] == "failed" and data["candidate"] == "workspace"
    assert data["summary"] == f"failed against sentiment#prod (sentiment@{V2}): sentiment: {', '.join(failed)}"
    rows = {r["metric"]: r for r in data["results"][0]["rows"]}
    assert rows["accuracy"] == {"metric": "accuracy", "baseline": 0.925, "candidate": 0.84, "change": pytest.approx(-0.085),
                                "rule": ">= baseline - 0", "verdict": "fail", "direction": "higher",
                                "kind": "quality", "regression": pytest.approx(0.085), "allowed": 0.0,
                                "accepted_by": None}
    assert rows["label_psi"]["verdict"] == "fail" and rows["label_psi"]["candidate"] > rows["label_psi"]["baseline"]


TRADEOFF = "v3 answers positive more often on purpose: a missed happy customer costs more than a false alarm"


def test_a_documented_tradeoff_lets_a_chosen_regression_through(released, runner):
    prod(released, V2, 1)
    # v3's confidences moved far from v2's (output PSI 3.5): a shift that large needs its own tradeoff
    set_gate(released, {"tolerance": {"accuracy*": 0.1, "labels.*": 0.2, "confidence.*": 0.2},
                        "accept": [{"metric": "label_psi", "max_regression": 0.1, "rationale": TRADEOFF},
                                   {"metric": "output_psi.confidence", "max_regression": 4, "rationale": TRADEOFF}]})
    result = gate(runner)
    assert result.exit_code == 0, result.stdout + result.stderr
    out = result.stdout
    row = next(line for line in out.splitlines() if line.startswith("label_psi "))
    assert row.split()[-1] == "accepted" and "<= baseline + 0" in row
    assert ("Accepted tradeoffs (params.yaml gate.accept):\n"
            "  label_psi: up to 0.1 worse (let through: label_psi)\n"
            f"    rationale: {TRADEOFF}\n") in out
    assert verdict(out.splitlines()).endswith("meet or beat the baseline, 2 through accepted tradeoffs")
    md = gate(runner, "--md").stdout
    assert f"- `label_psi` up to 0.1 worse (let through: `label_psi`): {TRADEOFF}" in md
    assert "| `label_psi` |" in md and "☑️ accepted" in md
    # a tradeoff smaller than the regression lets nothing through
    set_gate(released, {"tolerance": {"accuracy*": 0.1, "labels.*": 0.2, "confidence.*": 0.2},
                        "accept": [{"metric": "label_psi", "max_regression": 0.05, "rationale": TRADEOFF}]})
    result = gate(runner)
    assert result.exit_code == 1
    assert "  label_psi: up to 0.05 worse (not needed; exceeded by: label_psi)\n" in result.stdout
    assert verdict(result.stdout.splitlines()) == \
        "FAIL: sentiment on sentiment: 2 regressions: label_psi, output_psi.confidence"


def test_a_tradeoff_without_rationale_is_refused(released, runner):
    prod(released, V2, 1)
    set_gate(released, {"accept": [{"metric": "label_psi", "max_regression": 0.1}]})
    result = gate(runner)
    assert result.exit_code == 3
    assert result.stdout == ""
    assert result.stderr == (
        f"Error: {released / 'params.yaml'}: gate.accept[0] (label_psi): rationale is required and must not be empty\n"
        "  hint: say why this regression is acceptable: the rationale is versioned in git, reviewed like code "
        "and printed in every gate report\n")


def new_evalset_version(repo, runner) -> str:
    """Every other example of the eval set becomes its new version; the workspace model (v3) is
    evaluated on it. Returns the new eval set md5."""
    path = repo / EVALSET
    path.write_text("".join(line + "\n" for line in path.read_text().splitlines()[::2]))
    for args in (["evalset", "add", EVALSET], ["eval", "sentiment", "--evalset", "sentiment"]):
        result = runner.invoke(cli, args)
        assert result.exit_code == 0, result.stdout + result.stderr
    return json.loads((repo / METRICS).read_text())["evalset"]["md5"]


def test_gate_on_different_eval_sets_refuses_without_rerun(released, runner):
    prod(released, V2, 1)
    old_md5 = json.loads(git(released, "show", f"sentiment@{V2}:{METRICS}"))["evalset"]["md5"]
    new_md5 = new_evalset_version(released, runner)
    before = snapshot_tree(released)
    result = gate(runner)
    assert result.exit_code == 3
    assert result.stdout == ""
    assert result.stderr == (
        "Error: cannot gate sentiment on eval set 'sentiment': the baseline (sentiment#prod (sentiment@v1.2.0)) and "
        "candidate (workspace) results are not comparable: eval set evalsets/sentiment.jsonl md5 differs "
        f"(baseline {old_md5}, candidate {new_md5})\n"
        "  hint: pass --rerun to evaluate the baseline checkpoint on the candidate's eval set with the candidate's "
        "params (from the DVC cache; the workspace is not touched)\n")
    assert snapshot_tree(released) == before


def test_rerun_evaluates_the_baseline_checkpoint_on_the_candidates_eval_set(released, runner):
    prod(released, V2, 1)
    new_md5 = new_evalset_version(released, runner)
    v2_md5 = json.loads(git(released, "show", f"sentiment@{V2}:{METRICS}"))["model"]["md5"]
    # what v2 answered on these examples, from its stored outputs
    kept = {json.loads(line)["id"] for line in (released / EVALSET).read_text().splitlines()}
    v2_outputs = [json.loads(line) for line in git(released, "show",
                                                     f"sentiment@{V2}:metrics/sentiment/sentiment.outputs.jsonl").splitlines()]
    v2_accuracy = round(sum(o["correct"] for o in v2_outputs if o["id"] in kept) / len(kept), 6)
    git(released, "add", "-A")   # the tree as the user left it, staged or not, must not move
    before, status = snapshot_tree(released), git(released, "status", "--porcelain")

    result = gate(runner, "--rerun", "--json")
    assert result.exit_code == 1, result.stdout + result.stderr   # v3 still loses to v2
    r = json.loads(result.stdout)["results"][0]
    assert r["rerun"] is True and r["rerun_reason"].startswith("the baseline (sentiment#prod (sentiment@v1.2.0)) and "
                                                               "candidate (workspace) results are not comparable")
    assert r["baseline_model_md5"] == v2_md5 != r["candidate_model_md5"]
    assert r["evalset_md5"] == new_md5
    rows = {row["metric"]: row for row in r["rows"]}
    assert rows["accuracy"]["baseline"] == v2_accuracy
    assert rows["n"]["baseline"] == rows["n"]["candidate"] == len(kept)
    assert snapshot_tree(released) == before and git(released, "status", "--porcelain") == status
    assert not (released / "metrics" / "sentiment" / "sentiment.json.tmp").exists()


def test_rerun_on_the_same_eval_set_reproduces_the_stored_baseline(released, runner):
    prod(released, V1, 1)
    stored = gating.gate_candidate("sentiment", candidate=f"sentiment@{V2}").reports[0]
    again = gating.gate_candidate("sentiment", candidate=f"sentiment@{V2}", rerun=True).reports[0]
    assert again.rerun and again.rerun_reason == "--rerun"
    quality = {k: v for k, v in stored.baseline_doc["metrics"].items() if k != "latency_ms"}
    assert {k: v for k, v in again.baseline_doc["metrics"].items() if k != "latency_ms"} == quality
    assert again.passed


def test_rerun_needs_the_baseline_weights_in_the_cache(released, runner):
    prod(released, V2, 1)
    new_evalset_version(released, runner)
    shutil.rmtree(released / ".dvc" / "cache")
    result = gate(runner, "--rerun")
    assert result.exit_code == 3
    assert result.stderr.startswith("Error: baseline model (sentiment#prod (sentiment@v1.2.0)) models/sentiment.gguf "
                                    "with md5 ")
    assert "is neither in the local DVC cache nor in the workspace\n  hint: fetch it with `dvc fetch`" in result.stderr


def test_no_baseline_holder(released, runner):
    assert gating.baseline_holder(released, "sentiment") is None
    result = gate(runner)
    assert result.exit_code == 3
    assert result.stderr == (
        "Error: no version of 'sentiment' holds stage 'prod': there is no baseline to gate against\n"
        "  hint: promote one first with `git model promote sentiment VERSION --stage prod` "
        "(the first promotion has no holder to beat), or pass --baseline REF\n")
    prod(released, V1, 1)
    assert gating.baseline_holder(released, "sentiment").tag == "sentiment#prod#1"
    # an explicit baseline needs no stage
    assert gate(runner, "--baseline", f"sentiment@{V2}", "--candidate", f"sentiment@{V2}").exit_code == 0


def test_stale_candidate_metrics_are_refused(released, runner, demo_dir):
    prod(released, V1, 1)
    shutil.copy(demo_dir / "sentiment-v2.gguf", released / "models" / "sentiment.gguf")
    assert runner.invoke(cli, ["add", "models/sentiment.gguf"]).exit_code == 0
    stored = json.loads((released / METRICS).read_text())["model"]["md5"]
    tracked = next(line.split()[-1] for line in (released / "models/sentiment.gguf.dvc").read_text().splitlines()
                   if "md5:" in line)
    result = gate(runner)
    assert result.exit_code == 3
    assert result.stderr == (
        f"Error: stale candidate metrics: {METRICS} at workspace is stale: it measured model md5 {stored}, "
        f"but models/sentiment.gguf at workspace is md5 {tracked}\n"
        "  hint: re-evaluate with `git model eval sentiment --evalset sentiment` (or `dvc repro`)\n")


def test_gate_markdown_report(released, runner):
    prod(released, V2, 1)
    result = gate(runner, "--md")
    assert result.exit_code == 1
    lines = result.stdout.splitlines()
    assert lines[:2] == ["<!-- git-model-gate -->",
                         "### git-model gate: `sentiment` — `workspace` vs `sentiment#prod (sentiment@v1.2.0)`"]
    assert lines[3].startswith("❌ **Gate failed**: sentiment: `accuracy`, ")
    assert "| metric | baseline | candidate | change | rule |  |" in lines
    assert ("| `accuracy` | 0.925 | 0.84 | -0.085 | &gt;= baseline - 0 (worse by 0.085 &gt; 0 allowed) | ❌ fail |"
            in lines)


def test_a_new_eval_set_has_no_baseline_result_until_rerun(released, runner):
    prod(released, V2, 1)
    small = released / "evalsets" / "small.jsonl"
    small.write_text("".join(line + "\n" for line in (released / EVALSET).read_text().splitlines()[:40]))
    for args in (["evalset", "add", "evalsets/small.jsonl"], ["eval", "sentiment", "--evalset", "small"]):
        assert runner.invoke(cli, args).exit_code == 0
    result = gate(runner, "--evalset", "small")
    assert result.exit_code == 3
    assert result.stderr.startswith(
        "Error: cannot gate sentiment on eval set 'small': the baseline (sentiment#prod (sentiment@v1.2.0)) has no "
        "stored result on this eval set (metrics/sentiment/small.json does not exist there)\n")
    results = gating.gate_candidate("sentiment", evalset="small", rerun=True).reports
    assert [(r.evalset, r.rerun) for r in results] == [("small", True)]
    assert results[0].baseline_doc["metrics"]["n"] == 40
    assert results[0].baseline_doc["evalset"] == results[0].candidate_doc["evalset"]


# ----------------------------------------------------------------------------- verdicts that do not move


def gm(runner, *args):
    result = runner.invoke(cli, list(args), prog_name="git model")
    assert result.exit_code == 0, (args, result.stdout, result.stderr)
    return result


def quality(doc: dict) -> dict:
    """Every metric that does not measure time."""
    from gitmodel.metricspecs import iter_leaves, spec

    return {k: v for k, v in iter_leaves(doc["metrics"]) if spec(k).kind.value != "timing"}


@pytest.mark.slow
def test_label_order_never_changes_a_metric(registry, runner):
    """Demo v1 scores 90 examples with both labels exactly equal. A tie is no answer, so it is never
    correct, and reordering `labels` (all lines, or line by line at random) changes no metric."""
    import random

    metrics_file = registry / "metrics/sentiment-v1/sentiment.json"
    gm(runner, "eval", "sentiment-v1", "--evalset", "sentiment")
    reference = json.loads(metrics_file.read_text())
    assert reference["metrics"]["ties"] == 90
    assert reference["metrics"]["accuracy"] == 0.635     # 0.75 when a tie won with the first label
    lines = [json.loads(line) for line in (registry / EVALSET).read_text().splitlines()]
    orders = [lambda labels, i: labels[::-1]]
    orders += [lambda labels, i, seed=seed: random.Random(f"{seed}-{i}").sample(labels, len(labels)) for seed in (1, 2)]
    for reorder in orders:
        shuffled = [{**line, "labels": reorder(line["labels"], i)} for i, line in enumerate(lines)]
        assert any(s["labels"] != line["labels"] for s, line in zip(shuffled, lines))
        (registry / EVALSET).write_text("".join(json.dumps(line) + "\n" for line in shuffled))
        gm(runner, "evalset", "add", EVALSET)
        gm(runner, "eval", "sentiment-v1", "--evalset", "sentiment")
        assert quality(json.loads(metrics_file.read_text())) == quality(reference)


def generation_evalset(repo, runner) -> None:
    """The demo inputs as generation examples (no labels): tokens_per_second applies."""
    lines = [json.loads(line) for line in (repo / EVALSET).read_text().splitlines()]
    (repo / "evalsets" / "gen.jsonl").write_text(
        "".join(json.dumps({"id": line["id"], "input": line["input"]}) + "\n" for line in lines))
    gm(runner, "evalset", "add", "evalsets/gen.jsonl")
    gm(runner, "eval", "sentiment", "--evalset", "gen")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "a generation eval set")


def self_gate(runner) -> tuple[int, str]:
    gm(runner, "eval", "sentiment", "--evalset", "gen", "--force")
    result = runner.invoke(cli, ["gate", "sentiment", "--baseline", "HEAD", "--evalset", "gen"], prog_name="git model")
    return result.exit_code, result.stdout + result.stderr


@pytest.mark.slow
def test_a_checkpoint_gated_against_itself_passes_idle_and_busy(released, runner, tmp_path):
    """The same checkpoint re-evaluated passes its own gate, several times, with the machine idle and
    while another eval loads it. tokens_per_second is measured on the CPU time of generation, which a
    busy machine does not stretch (on wall time it fell to 17-38 % of the baseline under that load,
    and the gate failed 10 times in 10)."""
    import os
    import signal
    import subprocess
    import sys

    generation_evalset(released, runner)
    for _ in range(3):
        code, out = self_gate(runner)
        assert code == 0, out
    other = tmp_path / "other"
    shutil.copytree(released, other, symlinks=True)
    loop = ("import subprocess, sys\n"
            "while True:\n"
            "    subprocess.run([sys.executable, '-m', 'gitmodel', 'eval', 'sentiment', '--evalset', 'sentiment',"
            " '--force'], capture_output=True)\n")
    load = subprocess.Popen([sys.executable, "-c", loop], cwd=other, start_new_session=True)
    try:
        for _ in range(5):
            code, out = self_gate(runner)
            assert code == 0, out
        assert load.poll() is None          # the load ran all along
    finally:
        os.killpg(load.pid, signal.SIGKILL)   # the loop and the eval it runs
        load.wait()
