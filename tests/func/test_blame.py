"""blame on a real release history: the demo v1, v2, v3 weights of one model, evaluated by llama.cpp."""
from __future__ import annotations

import json
import shutil

from gitmodel import behaviour, blame
from tests.conftest import RELEASES, git, snapshot_tree, status_porcelain
from tests.func.stagekit import gm, gm_ok

OUTPUTS = "metrics/sentiment/sentiment.outputs.jsonl"


def outputs_at(repo, rev) -> dict:
    return behaviour.parse_outputs(git(repo, "show", f"{rev}:{OUTPUTS}").encode())


def test_blame_marks_the_exact_flips(released):
    per_release = [outputs_at(released, f"sentiment@{v}") for v in RELEASES]
    broken_by_v3 = sorted(i for i in per_release[1] if per_release[1][i]["correct"] and not per_release[2][i]["correct"])
    fixed_by_v2 = sorted(i for i in per_release[0] if not per_release[0][i]["correct"] and per_release[1][i]["correct"])
    assert "r0147" in broken_by_v3 and fixed_by_v2
    for example_id in (broken_by_v3[0], fixed_by_v2[0]):
        result = blame.blame(released, "sentiment", example_id)
        assert [r.revision for r in result.rows] == list(RELEASES) + ["workspace"]
        for row, outputs in zip(result.rows, per_release + [per_release[2]]):
            assert row.record == outputs[example_id]
        flips = [(r.revision, r.correct_flipped) for r in result.rows]
        expected = [False] + [per_release[k][example_id]["correct"] != per_release[k - 1][example_id]["correct"]
                              for k in (1, 2)] + [False]
        assert [f for _, f in flips] == expected
        assert any(expected)
    text = gm_ok("blame", "sentiment", "r0147").stdout
    assert text.splitlines()[0] == "blame sentiment r0147 (eval set sentiment)"
    line_v3 = next(line for line in text.splitlines() if line.startswith("v1.10.0"))
    assert "NO" in line_v3 and "correct -> wrong" in line_v3
    example = next(json.loads(x) for x in (released / "evalsets/sentiment.jsonl").read_text().splitlines()
                   if json.loads(x)["id"] == "r0147")
    assert f"  input:    {example['input']}" in text
    assert f"  expected: {example['expected']}" in text


def test_blame_shows_the_stages_each_release_held(in_prod):
    data = json.loads(gm_ok("blame", "sentiment", "r0147", "--json").stdout)
    rows = {r["revision"]: r for r in data["rows"]}
    assert rows["v1.10.0"]["stages"] == ["prod"]
    assert rows["v1.0.0"]["stages"] == [] and rows["v1.0.0"]["held"] == ["prod"]
    text = gm_ok("blame", "sentiment", "r0147").stdout
    assert any(line.startswith("v1.0.0") and "(prod)" in line for line in text.splitlines())


def test_blame_reads_nothing_but_git_objects(released):
    before, status = snapshot_tree(released), status_porcelain(released)
    gm_ok("blame", "sentiment", "r0147")
    assert snapshot_tree(released) == before and status_porcelain(released) == status


def test_an_id_absent_from_every_release_is_an_error(released):
    result = gm("blame", "sentiment", "r0147x")
    assert result.exit_code == 3
    assert result.stderr.splitlines()[0] == ("Error: example 'r0147x' is in no release's outputs of sentiment on "
                                             "sentiment; did you mean 'r0147', 'r0347' or 'r0317'?")


def test_an_unknown_model_is_an_error(released):
    result = gm("blame", "sentimnt", "r0147")
    assert result.exit_code == 3 and "hint: did you mean 'sentiment'?" in result.stderr


def test_a_model_without_releases_is_an_error_with_the_way_out(registry):
    result = gm("blame", "sentiment-v1", "r0147")
    assert result.exit_code == 3
    assert result.stderr.splitlines() == ["Error: model 'sentiment-v1' has no releases to blame",
                                          "  hint: release one with `git model release sentiment-v1 v1.0.0`"]


def test_a_release_whose_eval_set_changed_says_so(released):
    lines = (released / "evalsets/sentiment.jsonl").read_text().splitlines(keepends=True)
    kept = [line for line in lines if json.loads(line)["id"] != "r0147"]
    (released / "evalsets/sentiment.jsonl").write_text("".join(kept))
    gm_ok("evalset", "add", "evalsets/sentiment.jsonl")
    gm_ok("eval", "sentiment", "--evalset", "sentiment")
    git(released, "add", "-A")
    git(released, "commit", "-q", "-m", "eval set without r0147")
    gm_ok("release", "sentiment", "v1.11.0")
    dropped = blame.blame(released, "sentiment", "r0147")
    row = next(r for r in dropped.rows if r.revision == "v1.11.0")
    assert row.record is None and row.note.startswith("its eval set (md5 ") and "does not hold 'r0147'" in row.note
    kept_id = blame.blame(released, "sentiment", "r0001")
    assert all(r.record is not None for r in kept_id.rows)
    older = [r for r in kept_id.rows if r.revision in ("v1.0.0", "v1.2.0", "v1.10.0")]
    assert all("another version; this example is the same" in r.note for r in older)
    # without the older eval set in the DVC cache, it cannot be checked: said instead of a row
    from gitmodel import store

    shutil.rmtree(store.cache_dir(released))
    unknown = blame.blame(released, "sentiment", "r0001")
    assert unknown.example is None or unknown.rows[-1].record is not None
    assert all(r.record is None and "is not in the local DVC cache" in r.note
               for r in unknown.rows if r.revision in ("v1.0.0", "v1.2.0", "v1.10.0"))


def test_an_eval_set_without_results_is_an_error(released):
    result = gm("blame", "sentiment", "r0147", "--evalset", "other")
    assert result.exit_code == 3
    assert result.stderr.splitlines()[0] == "Error: no release of 'sentiment' has results on eval set 'other'"


def test_a_damaged_workspace_metrics_file_is_refused_after_a_valid_one_was_read(released):
    from gitmodel import results
    from gitmodel.errors import InvalidMetrics
    from gitmodel.revisions import Revision

    workspace = Revision("workspace", None)
    assert results.results_at(released, workspace, "sentiment")   # valid: its bytes are remembered as checked
    path = released / "metrics/sentiment/sentiment.json"
    path.write_text(path.read_text().replace('"accuracy": ', '"accuracy": "high", "x": ', 1))
    try:
        results.results_at(released, workspace, "sentiment")
    except InvalidMetrics as e:
        assert e.message.startswith("metrics/sentiment/sentiment.json (workspace): ")
    else:
        raise AssertionError("a damaged metrics file was read as valid")
