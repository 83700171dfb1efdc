"""`git model verify`: re-run from the DVC cache, compare byte for byte, never touch the workspace."""
from __future__ import annotations

import json
import shutil

from gitmodel.cli import cli
from tests.conftest import git, snapshot_tree

EVAL = ["eval", "sentiment-v2", "--evalset", "sentiment"]
OUTPUTS = "metrics/sentiment-v2/sentiment.outputs.jsonl"


def test_verify_reproduces_stored_outputs(registry, runner):
    assert runner.invoke(cli, EVAL).exit_code == 0
    before = snapshot_tree(registry)
    result = runner.invoke(cli, ["verify", "sentiment-v2"])
    assert result.exit_code == 0, result.output + result.stderr
    assert result.output.splitlines()[0] == ("Reproduced: sentiment-v2 on sentiment at workspace: all 400 outputs "
                                             "identical, byte for byte; summary metrics recomputed equal")
    assert snapshot_tree(registry) == before


def test_verify_lists_differing_ids(registry, runner):
    assert runner.invoke(cli, EVAL).exit_code == 0
    path = registry / OUTPUTS
    lines = path.read_text().splitlines()
    for i in (3, 7):
        record = json.loads(lines[i])
        record["label"] = record["output"] = "negative" if record["label"] == "positive" else "positive"
        lines[i] = json.dumps(record, separators=(",", ":"))
    path.write_text("\n".join(lines) + "\n")
    result = runner.invoke(cli, ["verify", "sentiment-v2", "--evalset", "sentiment"])
    assert result.exit_code == 1
    assert "MISMATCH: sentiment-v2 on sentiment at workspace: 2 of 400 outputs differ" in result.output
    ids = [json.loads(lines[i])["id"] for i in (3, 7)]
    assert all(f"  {i}\n" in result.output for i in ids)
    assert "- stored:" in result.output and "+ reproduced:" in result.output
    data = json.loads(runner.invoke(cli, ["verify", "sentiment-v2", "--json"]).output)
    assert [d["id"] for d in data[0]["differences"]] == ids


def test_verify_at_a_revision_uses_the_cache_not_the_workspace(registry, runner):
    assert runner.invoke(cli, EVAL).exit_code == 0
    git(registry, "add", "-A")
    git(registry, "commit", "-q", "-m", "eval v2")
    # the workspace moves on: other weights, and the committed v2 bytes are gone from it
    shutil.copy(registry / "models/sentiment-v3.gguf", registry / "models/sentiment-v2.gguf")
    before = snapshot_tree(registry)
    result = runner.invoke(cli, ["verify", "sentiment-v2", "--rev", "HEAD"])
    assert result.exit_code == 0, result.output + result.stderr
    assert "at HEAD: all 400 outputs identical" in result.output
    assert snapshot_tree(registry) == before


def test_verify_stale_result_is_a_no(registry, runner):
    assert runner.invoke(cli, EVAL).exit_code == 0
    shutil.copy(registry / "models/sentiment-v3.gguf", registry / "models/sentiment-v2.gguf")
    assert runner.invoke(cli, ["add", "models/sentiment-v2.gguf"]).exit_code == 0
    result = runner.invoke(cli, ["verify", "sentiment-v2"])
    assert result.exit_code == 1
    assert "NOT reproducible" in result.output and "stale result" in result.output


def test_verify_without_stored_result(registry, runner):
    result = runner.invoke(cli, ["verify", "sentiment-v1"])
    assert result.exit_code == 3
    assert result.stderr.startswith("Error: no stored results for model 'sentiment-v1' at workspace")


def test_verify_missing_cache_object(registry, runner):
    assert runner.invoke(cli, EVAL).exit_code == 0
    git(registry, "add", "-A")
    git(registry, "commit", "-q", "-m", "eval v2")
    shutil.rmtree(registry / ".dvc/cache")
    shutil.copy(registry / "models/sentiment-v3.gguf", registry / "models/sentiment-v2.gguf")
    result = runner.invoke(cli, ["verify", "sentiment-v2", "--rev", "HEAD"])
    assert result.exit_code == 3
    assert "is neither in the local DVC cache nor in the workspace" in result.stderr
    assert "dvc fetch" in result.stderr


def test_verify_unknown_revision(registry, runner):
    result = runner.invoke(cli, ["verify", "sentiment-v2", "--rev", "nope"])
    assert result.exit_code == 3
    assert "unknown revision 'nope'" in result.stderr


def test_an_edited_summary_metric_is_a_mismatch_naming_it(registry, runner):
    assert runner.invoke(cli, EVAL).exit_code == 0
    summary = registry / "metrics/sentiment-v2/sentiment.json"
    text = summary.read_text()
    accuracy = json.loads(text)["metrics"]["accuracy"]
    assert f'"accuracy": {accuracy},' in text
    summary.write_text(text.replace(f'"accuracy": {accuracy},', '"accuracy": 0.99,', 1))
    result = runner.invoke(cli, ["verify", "sentiment-v2"])
    assert result.exit_code == 1, result.output + result.stderr
    lines = result.output.splitlines()
    assert lines[0] == ("MISMATCH: sentiment-v2 on sentiment at workspace: stored summary differs from the one "
                        "recomputed from the outputs on accuracy")
    assert lines[1] == f"  accuracy: stored 0.99, recomputed {accuracy!r}"
    data = json.loads(runner.invoke(cli, ["verify", "sentiment-v2", "--json"]).output)
    assert data[0]["identical"] is False and data[0]["differences"] == []
    assert data[0]["metric_differences"] == [{"key": "accuracy", "stored": 0.99, "reproduced": accuracy}]


def test_timing_metrics_are_not_compared(registry, runner):
    assert runner.invoke(cli, EVAL).exit_code == 0
    summary = registry / "metrics/sentiment-v2/sentiment.json"
    doc = json.loads(summary.read_text())
    doc["metrics"]["latency_ms"]["p50"] = doc["metrics"]["latency_ms"]["p50"] * 10 + 1
    summary.write_text(json.dumps(doc, indent=2))
    result = runner.invoke(cli, ["verify", "sentiment-v2"])
    assert result.exit_code == 0, result.output + result.stderr


def test_a_missing_output_line_is_shown_as_missing_not_none(registry, runner):
    assert runner.invoke(cli, EVAL).exit_code == 0
    path = registry / OUTPUTS
    lines = path.read_text().splitlines(keepends=True)
    dropped = json.loads(lines[5])["id"]
    path.write_text("".join(lines[:5] + lines[6:]))
    result = runner.invoke(cli, ["verify", "sentiment-v2"])
    assert result.exit_code == 1
    assert f"  {dropped}\n    - stored:     (no line for this id)\n    + reproduced: {lines[5]}" in result.output
    assert "None" not in result.output


def test_verify_says_which_params_it_ran_with(registry, runner):
    assert runner.invoke(cli, EVAL).exit_code == 0
    stored = json.loads((registry / "metrics/sentiment-v2/sentiment.json").read_text())["params"]
    # params.yaml moves on: verify still runs with (and says) the recorded params
    params = registry / "params.yaml"
    params.write_text(params.read_text().replace("n_threads: 1 ", "n_threads: 2 "))
    result = runner.invoke(cli, ["verify", "sentiment-v2"])
    assert result.exit_code == 0, result.output + result.stderr
    shown = "  params: " + ", ".join(f"{k}={json.dumps(v)}" for k, v in stored.items())
    assert result.output.splitlines()[1] == shown
    assert "n_threads=1" in shown
    data = json.loads(runner.invoke(cli, ["verify", "sentiment-v2", "--json"]).output)
    assert data[0]["params"] == stored


# ----------------------------------------------------------------------------- --rev reads the revision grammar


def test_verify_rev_a_stage_verifies_the_version_holding_it(released, runner):
    from tests.func.stagekit import record_prod

    record_prod(released, "v1.2.0", 1)
    result = runner.invoke(cli, ["verify", "sentiment", "--rev", "sentiment#prod", "--json"])
    assert result.exit_code == 0, result.output + result.stderr
    [report] = json.loads(result.output)
    assert report["rev"] == "sentiment#prod (sentiment@v1.2.0)" and report["identical"] is True
    # it is v1.2.0's stored result that was re-run: the demo v2 weights, not the workspace's v3
    v2 = json.loads(git(released, "show", "sentiment@v1.2.0:metrics/sentiment/sentiment.json"))
    assert report["params"] == v2["params"] and report["n"] == v2["metrics"]["n"]
    text = runner.invoke(cli, ["verify", "sentiment", "--rev", "sentiment#prod"])
    assert text.output.startswith("Reproduced: sentiment on sentiment at sentiment#prod (sentiment@v1.2.0): ")


def test_verify_rev_latest_verifies_the_highest_release(released, runner):
    result = runner.invoke(cli, ["verify", "sentiment", "--rev", "sentiment@latest"])
    assert result.exit_code == 0, result.output + result.stderr
    assert result.output.startswith("Reproduced: sentiment on sentiment at sentiment@latest (sentiment@v1.10.0): ")


def test_verify_rev_a_stage_nothing_holds(released, runner):
    result = runner.invoke(cli, ["verify", "sentiment", "--rev", "sentiment#prod"])
    assert result.exit_code == 3
    assert result.stderr.splitlines()[0] == "Error: sentiment#prod: no version of 'sentiment' holds stage 'prod'"


def test_verify_rev_of_another_model_is_refused(registry, runner):
    assert runner.invoke(cli, EVAL).exit_code == 0
    git(registry, "add", "-A")
    git(registry, "commit", "-q", "-m", "eval v2")
    assert runner.invoke(cli, ["release", "sentiment-v2", "v1.0.0"]).exit_code == 0
    result = runner.invoke(cli, ["verify", "sentiment-v1", "--rev", "sentiment-v2@latest"])
    assert result.exit_code == 3
    assert result.stderr.splitlines()[0] == ("Error: --rev sentiment-v2@latest names model 'sentiment-v2', "
                                             "not 'sentiment-v1'")


def test_verify_rev_a_name_that_is_a_branch_and_a_tag_is_refused(registry, runner):
    assert runner.invoke(cli, EVAL).exit_code == 0
    git(registry, "add", "-A")
    git(registry, "commit", "-q", "-m", "eval v2")
    git(registry, "branch", "candidate")
    git(registry, "tag", "candidate")
    result = runner.invoke(cli, ["verify", "sentiment-v2", "--rev", "candidate"])
    assert result.exit_code == 3
    assert result.stderr.splitlines()[0] == "Error: 'candidate' is both a branch and a tag: git-model does not guess"
