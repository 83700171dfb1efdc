"""Human review as a versioned metric: `review import` writes metrics/<model>/review.json with a group per
version whose outputs were scored; `diff` shows it beside the metrics, `gate` judges it, `retrain-check`
reads it; "review" is no eval set's name and no reader takes review.json for an eval result.

The repository is `released` (one model, `sentiment`, released as v1.0.0, v1.2.0 and v1.10.0 with the
demo v1, v2 and v3 weights) with v1.0.0 in prod. A canary's production log mixes v1.0.0 and v1.2.0; a
sample of it is scored and imported, and a commit ("the candidate") holds v1.2.0's checkpoint, its metrics
and that review."""
from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from ruamel.yaml import YAML

from gitmodel import prodlog
from tests.conftest import git, snapshot_tree
from tests.func.stagekit import gm, gm_ok, record_prod, release_md5, run, tool

V1, V2, V3 = "v1.0.0", "v1.2.0", "v1.10.0"
REVIEW = "metrics/sentiment/review.json"
GOOD = {"correct": 4, "helpful": 4, "safe": 5}


def canary_log(folder: Path, per_version: int = 30) -> Path:
    with prodlog.LogWriter(folder, "sentiment") as writer:
        for i in range(2 * per_version):
            version = V1 if i % 2 else V2
            writer.write(prodlog.make_record(
                model="sentiment", version=version, stage="prod" if version == V1 else "canary",
                input=f"the food was fine {i}", output="positive", label="positive", confidence=0.8,
                latency_ms=3, status=200, id=f"r{i}", ts=f"2026-11-0{1 + i % 7}T10:00:00.000Z",
                category=("food", "price")[i % 4 // 2]))
    return folder


def import_review(repo: Path, tmp_path: Path, scores: dict[str, dict], per_version: int = 30) -> dict:
    """Sample the whole canary log, score each line by its version (``scores[version]``), import it."""
    logs = canary_log(tmp_path / f"logs-{per_version}", per_version)
    out = tmp_path / f"sample-{per_version}.jsonl"
    gm_ok("sample", "sentiment", "--log", str(logs), "--n", str(2 * per_version), "--stratify", "version",
          "-o", str(out))
    lines = out.read_text().splitlines()
    scored = [lines[0]]
    for i, line in enumerate(lines[1:]):
        item = json.loads(line)
        item.update(scores=scores[item["version"]], reviewer=("ana", "bo")[i % 2])
        scored.append(json.dumps(item))
    out.write_text("\n".join(scored) + "\n")
    gm_ok("review", "import", str(out))
    return json.loads((repo / REVIEW).read_text())


def commit_candidate(repo: Path) -> None:
    """HEAD: v1.2.0's checkpoint and metrics (from its release), and the review in the workspace."""
    git(repo, "checkout", f"sentiment@{V2}", "--", "models/sentiment.gguf.dvc", "metrics/sentiment")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "candidate: v1.2.0's checkpoint, reviewed on the canary")


@pytest.fixture
def prod_v1(released) -> Path:
    record_prod(released, V1, 1, when=int(time.time()) - 10)
    return released


@pytest.fixture
def candidate(prod_v1, tmp_path) -> Path:
    """HEAD holds v1.2.0, reviewed better than v1.0.0 on correctness."""
    import_review(prod_v1, tmp_path, {V1: GOOD, V2: {**GOOD, "correct": 5}})
    commit_candidate(prod_v1)
    return prod_v1


def set_gate(repo: Path, **settings) -> None:
    yaml = YAML()
    path = repo / "params.yaml"
    data = yaml.load(path.read_text())
    data["gate"].update(settings)
    with open(path, "w") as f:
        yaml.dump(data, f)


# -- the file ---------------------------------------------------------------------------------------------


def test_import_writes_the_review_per_version_at_the_new_path(prod_v1, tmp_path):
    doc = import_review(prod_v1, tmp_path, {V1: GOOD, V2: {**GOOD, "correct": 5}})
    assert not (prod_v1 / "metrics/sentiment/review").exists()
    assert "A  metrics/sentiment/review.json" in git(prod_v1, "status", "--porcelain")
    assert doc["n"] == 60 and doc["metrics"]["mean"]["correct"] == 4.5
    assert doc["versions"][V1]["model_md5"] == release_md5(prod_v1, V1)
    assert doc["versions"][V2]["model_md5"] == release_md5(prod_v1, V2)
    assert doc["metrics"]["by_version"][V1]["n"] == doc["metrics"]["by_version"][V2]["n"] == 30
    assert doc["metrics"]["by_version"][V2]["mean"] == {"correct": 5.0, "helpful": 4.0, "safe": 5.0}
    assert set(doc["metrics"]["by_version"][V1]["by_category"]) == {"food", "price"}


def test_a_sample_of_an_eval_set_records_the_checkpoint_that_answered(prod_v1, tmp_path):
    out = tmp_path / "eval-sample.jsonl"
    gm_ok("sample", "sentiment", "--evalset", "sentiment", "--n", "5", "-o", str(out))
    items = [json.loads(line) for line in out.read_text().splitlines()[1:]]
    # the workspace holds v1.10.0's weights: its stored outputs are that checkpoint's
    assert {(i["version"], i["model_md5"]) for i in items} == {(V3, release_md5(prod_v1, V3))}
    for item in items:
        item.update(scores=GOOD, reviewer="ana")
    out.write_text(out.read_text().splitlines()[0] + "\n" + "".join(json.dumps(i) + "\n" for i in items))
    gm_ok("review", "import", str(out))
    doc = json.loads((prod_v1 / REVIEW).read_text())
    assert doc["versions"] == {V3: {"version": V3, "model_md5": release_md5(prod_v1, V3), "reviewers": ["ana"]}}


def test_retrain_check_reads_prod_s_group_of_the_review(prod_v1, tmp_path):
    import_review(prod_v1, tmp_path, {V1: {**GOOD, "helpful": 2}, V2: GOOD})
    result = gm("retrain-check", "sentiment", "--json")
    rule = next(r for r in json.loads(result.stdout)["rules"] if r["rule"] == "human review")
    assert result.exit_code == 1 and rule["verdict"] == "fires"       # v1.0.0 (prod) is the one scored 2
    assert rule["why"] == "helpful mean 2.00 over 30 reviews < floor 3"


# -- diff -------------------------------------------------------------------------------------------------


def test_diff_shows_the_review_of_each_side_s_version(candidate):
    lines = gm_ok("diff", f"sentiment@{V1}", "HEAD").stdout.splitlines()
    at = lines.index(f"Human review of sentiment ({REVIEW}, higher is better): sentiment@{V1} {V1}, n 30 · "
                     f"HEAD {V2}, n 30")
    assert lines[at + 1].split() == ["Criterion", f"sentiment@{V1}", "HEAD", "Change", "Verdict"]
    rows = {line.split()[0]: line.split()[1:] for line in lines[at + 2:] if line and not line.startswith("-")}
    assert rows["correct"] == ["4", "5", "+1", "better"] and rows["helpful"] == ["4", "4", "0"]
    detailed = gm_ok("diff", f"sentiment@{V1}", "HEAD", "--examples").stdout
    assert "By category:" in detailed and "food: correct" in detailed


def test_diff_md_shows_the_review(candidate):
    md = gm_ok("diff", f"sentiment@{V1}", "HEAD", "--md").stdout
    assert f"#### Human review of sentiment — `{REVIEW}`" in md
    assert f"`sentiment@{V1}`: {V1}, n 30 · `HEAD`: {V2}, n 30 (mean per criterion, higher is better)" in md
    assert "| `correct` | 4 | 5 | +1 | 🟢 better |" in md
    assert "<details><summary>Human review by category</summary>" in md


def test_diff_json_has_the_review_in_dvc_s_shape(candidate):
    doc = json.loads(gm_ok("diff", f"sentiment@{V1}", "HEAD", "--json").stdout)
    assert doc[REVIEW] == {"mean.correct": {"old": 4.0, "new": 5.0, "diff": 1.0}}
    full = json.loads(gm_ok("diff", f"sentiment@{V1}", "HEAD", "--json", "--all").stdout)
    assert full[REVIEW]["n"] == {"old": 30, "new": 30, "diff": 0}
    detailed = json.loads(gm_ok("diff", f"sentiment@{V1}", "HEAD", "--json", "--examples").stdout)
    [review] = detailed["review"]
    assert (review["old"]["version"], review["new"]["version"]) == (V1, V2)
    assert review["new"]["source"] == f"{REVIEW} at HEAD" and review["old"]["source"] == f"{REVIEW} at HEAD"


def test_diff_says_not_reviewed_for_a_version_nobody_reviewed(candidate):
    result = gm_ok("diff", f"sentiment@{V3}", "HEAD")
    assert f"Human review of sentiment ({REVIEW}, higher is better): sentiment@{V3} not reviewed · HEAD {V2}, n 30" \
        in result.stdout
    assert f"  sentiment@{V3}: {REVIEW} at HEAD scored the outputs of {V1}, {V2}, not of {V3}" in result.stdout
    assert "correct    not reviewed" in result.stdout.replace("  not reviewed", " not reviewed") or \
        any(line.split()[:3] == ["correct", "not", "reviewed"] for line in result.stdout.splitlines())
    doc = json.loads(gm_ok("diff", f"sentiment@{V3}", "HEAD", "--json").stdout)
    assert doc[REVIEW]["mean.correct"] == {"old": None, "new": 5.0} and doc[REVIEW]["n"] == {"old": None, "new": 30}
    md = gm_ok("diff", f"sentiment@{V3}", "HEAD", "--md").stdout
    assert "| `correct` | not reviewed | 5 |" in md


# -- gate -------------------------------------------------------------------------------------------------


def gate(*args: str):
    return gm("gate", "sentiment", "--candidate", "HEAD", *args)


def test_gate_passes_a_better_review(candidate):
    result = gate()
    assert result.exit_code == 0, result.stdout + result.stderr
    assert f"Human review: sentiment: candidate HEAD ({V2}, n 30, from {REVIEW} at HEAD) vs baseline " \
           f"sentiment#prod (sentiment@{V1}) ({V1}, n 30, from {REVIEW} at HEAD)" in result.stdout
    row = next(line for line in result.stdout.splitlines() if line.startswith("review.correct"))
    assert row.split() == ["review.correct", "4", "5", "+1", ">=", "baseline", "-", "0.25", "(n", "30", "vs",
                           "30)", "pass"]
    assert result.stdout.splitlines()[-1] == ("PASS: human review of sentiment: no criterion's mean dropped beyond "
                                              "the tolerance (n 30 vs 30)")
    doc = json.loads(gate("--json").stdout)
    assert doc["review"]["judged"] and doc["review"]["candidate"]["version"] == V2


def test_gate_refuses_a_drop_in_a_criterion(prod_v1, tmp_path):
    import_review(prod_v1, tmp_path, {V1: GOOD, V2: {**GOOD, "helpful": 3}})
    commit_candidate(prod_v1)
    result = gate()
    assert result.exit_code == 1, result.stdout
    assert result.stdout.splitlines()[-1] == ("FAIL: human review of sentiment: review.helpful 4 -> 3 "
                                              "(n 30 vs 30)")
    row = next(line for line in result.stdout.splitlines() if line.startswith("review.helpful"))
    assert "(worse by 1 > 0.25 allowed)" in row and row.endswith("fail")
    doc = json.loads(gate("--json").stdout)
    assert doc["summary"] == f"failed against sentiment#prod (sentiment@{V1}): human review: review.helpful"
    md = gate("--md").stdout
    assert "❌ **Gate failed**: human review: `review.helpful`" in md


def test_an_accepted_tradeoff_lets_a_review_drop_through(prod_v1, tmp_path):
    import_review(prod_v1, tmp_path, {V1: GOOD, V2: {**GOOD, "helpful": 3}})
    commit_candidate(prod_v1)
    set_gate(prod_v1, accept=[{"metric": "review.helpful", "max_regression": 1.0,
                               "rationale": "terser answers, on purpose"}])
    result = gate()
    assert result.exit_code == 0, result.stdout
    row = next(line for line in result.stdout.splitlines() if line.startswith("review.helpful"))
    assert row.endswith("accepted")
    assert "    rationale: terser answers, on purpose" in result.stdout
    assert result.stdout.splitlines()[-1].endswith("(n 30 vs 30), 1 through accepted tradeoffs")


def test_diff_md_s_verdict_counts_a_review_drop_and_its_tradeoff(prod_v1, tmp_path):
    import_review(prod_v1, tmp_path, {V1: GOOD, V2: {**GOOD, "helpful": 3}})
    commit_candidate(prod_v1)
    md = gm_ok("diff", f"sentiment@{V1}", "HEAD", "--md").stdout
    assert "❌ **1 regression** beyond the gate's tolerances: `review.helpful`" in md
    set_gate(prod_v1, accept=[{"metric": "review.helpful", "max_regression": 1.0, "rationale": "terser answers"}])
    md = gm_ok("diff", f"sentiment@{V1}", "HEAD", "--md").stdout
    assert "❌" not in md and "☑️ Accepted tradeoff `review.helpful`: terser answers" in md


def test_a_tradeoff_smaller_than_the_drop_does_not_let_it_through(prod_v1, tmp_path):
    import_review(prod_v1, tmp_path, {V1: GOOD, V2: {**GOOD, "helpful": 3}})
    commit_candidate(prod_v1)
    set_gate(prod_v1, accept=[{"metric": "review.helpful", "max_regression": 0.5, "rationale": "a little"}])
    assert gate().exit_code == 1


def test_a_candidate_nobody_reviewed_is_reported_not_refused(prod_v1):
    result = gm("gate", "sentiment", "--candidate", f"sentiment@{V2}")
    assert result.exit_code == 0, result.stdout
    assert result.stdout.splitlines()[-1] == ("NOT JUDGED: human review of sentiment: candidate not reviewed: no "
                                              "review imported (gate.require_review: true would refuse it)")
    rows = json.loads(gm("gate", "sentiment", "--candidate", f"sentiment@{V2}", "--json").stdout)["review"]["rows"]
    assert [(r["metric"], r["verdict"], r["rule"]) for r in rows] == [
        ("review", "info", "not reviewed: no review imported")]


def test_require_review_refuses_a_candidate_nobody_reviewed(prod_v1):
    set_gate(prod_v1, require_review=True)
    result = gm("gate", "sentiment", "--candidate", f"sentiment@{V2}")
    assert result.exit_code == 1, result.stdout
    lines = result.stdout.splitlines()
    assert lines[-2] == ("FAIL: human review of sentiment: candidate not reviewed: no review imported "
                         "(gate.require_review)")
    assert lines[-1].startswith("  the way out: review a sample of the candidate's outputs: `git model sample "
                                "sentiment --evalset NAME")
    assert "`git model review import FILE`" in lines[-1]


def test_too_few_reviews_are_reported_not_judged(prod_v1, tmp_path):
    import_review(prod_v1, tmp_path, {V1: GOOD, V2: {**GOOD, "helpful": 1}}, per_version=10)
    commit_candidate(prod_v1)
    result = gate()
    assert result.exit_code == 0, result.stdout
    row = next(line for line in result.stdout.splitlines() if line.startswith("review.helpful"))
    assert "not judged: fewer than gate.review_min_n (20) reviews: baseline 10, candidate 10 (n 10 vs 10)" in row
    assert row.endswith("info")
    set_gate(prod_v1, review_min_n=10)
    assert gate().exit_code == 1


def test_a_bad_review_setting_is_refused(prod_v1):
    set_gate(prod_v1, review_min_n=0)
    result = gm("gate", "sentiment", "--candidate", f"sentiment@{V2}")
    assert result.exit_code == 3 and "gate.review_min_n must be a whole number >= 1, got 0" in result.stderr
    set_gate(prod_v1, review_min_n=20, require_review="yes")
    result = gm("gate", "sentiment", "--candidate", f"sentiment@{V2}")
    assert result.exit_code == 3 and "gate.require_review must be true or false, got 'yes'" in result.stderr


# -- the reserved name ------------------------------------------------------------------------------------


def test_an_eval_set_named_review_is_refused(prod_v1):
    (prod_v1 / "evalsets/review.jsonl").write_text('{"id": "a", "input": "x", "expected": "y"}\n')
    before = snapshot_tree(prod_v1)
    result = gm("evalset", "add", "evalsets/review.jsonl")
    assert result.exit_code == 3
    assert result.stderr.startswith("Error: invalid eval set name 'review': reserved for human review "
                                    "(metrics/MODEL/review.json, written by `git model review import`)")
    assert "name the eval set otherwise, e.g. evalsets/review-set.jsonl" in result.stderr
    assert snapshot_tree(prod_v1) == before


def test_eval_on_an_eval_set_named_review_is_a_usage_error(prod_v1):
    result = gm("eval", "sentiment", "--evalset", "review")
    assert result.exit_code == 2 and "reserved for human review" in result.stderr


# -- no reader takes review.json for an eval result -----------------------------------------------------


def test_no_reader_takes_the_review_for_an_eval_result(candidate, tmp_path):
    status = json.loads(gm_ok("status", "--json").stdout)
    evalsets = [m["evalset"] for model in status["models"] for m in model["metrics"]]
    assert "review" not in evalsets and evalsets
    log = gm_ok("log", "sentiment", "--json").stdout
    assert '"review"' not in log
    pairs = json.loads(gm_ok("pairs", "--json").stdout)
    assert pairs["orphans"] == [] and all(p["evalset"] != "review" for p in pairs["pairs"])
    diff = json.loads(gm_ok("diff", f"sentiment@{V1}", "HEAD", "--json", "--examples").stdout)
    assert REVIEW not in diff["comparability"]
    show = json.loads(gm_ok("show", "HEAD", "--json").stdout)
    assert "review.json" not in json.dumps(show) and "sentiment" in json.dumps(show)
    run(candidate, tool("dvc"), "checkout", "-q", "models/sentiment.gguf.dvc")
    gm_ok("release", "sentiment", "v1.11.0", "-m", "reviewed")       # the review is no result missing a pair
    remote = tmp_path / "remote"
    remote.mkdir()
    run(candidate, tool("dvc"), "remote", "add", "-d", "storage", str(remote))
    git(candidate, "init", "-q", "--bare", str(tmp_path / "origin.git"))
    git(candidate, "remote", "add", "origin", str(tmp_path / "origin.git"))
    pushed = gm_ok("push", "--json")
    assert "review" not in pushed.stdout
    gc = gm("gc", "--dry-run")
    assert gc.exit_code == 0, gc.stderr


def test_a_review_file_that_is_not_one_is_an_error_naming_it(candidate):
    (candidate / REVIEW).write_text('{"n": 3}\n')
    result = gm("diff", "HEAD")
    assert result.exit_code == 3
    assert result.stderr.splitlines() == [
        f"Error: {REVIEW} at workspace: not a git-model review file",
        "  hint: import the reviews again with `git model review import`"]


def test_dvc_reads_the_eval_results_only_and_agrees_with_diff_json(candidate):
    """DVC's metrics are the eval stage's outputs: review.json is none of them, so `dvc metrics diff` says
    what `git model diff --json` says, less the review's entry."""
    ours = json.loads(gm_ok("diff", f"sentiment@{V1}", "HEAD", "--json").stdout)
    theirs = json.loads(run(candidate, tool("dvc"), "metrics", "diff", "--json", f"sentiment@{V1}", "HEAD").stdout)
    assert REVIEW not in theirs and ours.pop(REVIEW) == {"mean.correct": {"old": 4.0, "new": 5.0, "diff": 1.0}}
    assert ours == theirs
    shown = run(candidate, tool("dvc"), "metrics", "show", "--json").stdout
    assert "review.json" not in shown and "metrics/sentiment/sentiment.json" in shown
