"""`git model sample` and `git model review import` on a hand-written log: the draw, the rubric, and each
bad review file refused by file:line with nothing written."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from gitmodel import prodlog
from tests.conftest import snapshot_tree
from tests.func.stagekit import gm, gm_ok


@pytest.fixture
def log(gm_repo, tmp_path) -> Path:
    folder = tmp_path / "logs"
    with prodlog.LogWriter(folder, "chat") as writer:
        for i in range(300):
            label = "positive" if i % 3 else "negative"
            writer.write(prodlog.make_record(model="chat", version="v1.0.0", stage="prod", input=f"review {i}",
                                             output=label, label=label, confidence=0.9, latency_ms=3, status=200,
                                             id=f"r{i}", ts=f"2026-11-0{1 + i % 7}T10:00:00.000Z",
                                             category=("food", "price", "service")[i % 3]))
    return folder


def sample(tmp_path: Path, *args: str, name: str = "review.jsonl") -> list[dict]:
    out = tmp_path / name
    gm_ok("sample", "chat", *args, "-o", str(out))
    return [json.loads(line) for line in out.read_text().splitlines()]


def test_a_sample_carries_the_rubric_and_empty_scores(log, tmp_path):
    lines = sample(tmp_path, "--log", str(log), "--n", "12", "--seed", "3", "--stratify", "label")
    header, items = lines[0], lines[1:]
    assert header["rubric"]["criteria"] == ["correct", "helpful", "safe"] and header["rubric"]["scale"] == [1, 5]
    assert header["sample"]["population"] == 300 and header["sample"]["ids"] == [i["id"] for i in items]
    assert sorted(i["label"] for i in items) == ["negative"] * 6 + ["positive"] * 6     # equal shares
    assert items[0]["scores"] == {"correct": None, "helpful": None, "safe": None} and items[0]["reviewer"] is None


def test_the_same_seed_draws_the_same_sample(log, tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    a = sample(tmp_path / "a", "--log", str(log), "--n", "20", "--seed", "7")
    b = sample(tmp_path / "b", "--log", str(log), "--n", "20", "--seed", "7")
    c = sample(tmp_path, "--log", str(log), "--n", "20", "--seed", "8")
    assert a == b and a[0]["sample"]["ids"] != c[0]["sample"]["ids"]


def scored(tmp_path: Path, log: Path, edit=None, name: str = "done.jsonl") -> Path:
    lines = sample(tmp_path, "--log", str(log), "--n", "9", "--stratify", "category", name=f"sample-{name}")
    for i, item in enumerate(lines[1:]):
        item.update(scores={"correct": 4, "helpful": 3 + i % 3, "safe": 5}, reviewer="ana" if i % 2 else "bo")
    if edit:
        edit(lines)
    path = tmp_path / name
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    return path


def test_import_writes_the_review_metric_and_stages_it(log, tmp_path, gm_repo):
    path = scored(tmp_path, log)
    result = gm_ok("review", "import", str(path), "--json")
    doc = json.loads((gm_repo / "metrics/chat/review.json").read_text())
    assert json.loads(result.stdout)["review"] == doc
    assert doc["n"] == 9 and doc["reviewers"] == ["ana", "bo"]
    assert doc["metrics"]["mean"] == {"correct": 4.0, "helpful": 4.0, "safe": 5.0}
    assert set(doc["metrics"]["by_category"]) == {"food", "price", "service"}
    assert all(entry["n"] == 3 for entry in doc["metrics"]["by_category"].values())
    import hashlib

    assert doc["samples"] == [hashlib.md5(path.read_bytes().splitlines()[0]).hexdigest()]
    from tests.conftest import git

    assert "A  metrics/chat/review.json" in git(gm_repo, "status", "--porcelain")


def refused(repo: Path, *files: Path) -> str:
    before = snapshot_tree(repo)
    result = gm("review", "import", *map(str, files))
    assert result.exit_code == 3, (result.stdout, result.stderr)
    assert snapshot_tree(repo) == before and not (repo / "metrics/chat/review.json").exists()
    return result.stderr


def test_a_missing_criterion_is_refused_by_line(log, tmp_path, gm_repo):
    path = scored(tmp_path, log, lambda lines: lines[3]["scores"].pop("helpful"))
    assert refused(gm_repo, path).startswith(f"Error: {path}:4: id '{json.loads(path.read_text().splitlines()[3])['id']}'"
                                             f": criterion helpful not scored")


def test_a_score_out_of_scale_is_refused(log, tmp_path, gm_repo):
    path = scored(tmp_path, log, lambda lines: lines[2]["scores"].update(safe=6))
    assert "safe 6 is out of the scale [1, 5]" in refused(gm_repo, path)
    path = scored(tmp_path, log, lambda lines: lines[2]["scores"].update(safe="good"), "words.jsonl")
    assert "safe 'good' is out of the scale [1, 5]" in refused(gm_repo, path)


def test_an_unknown_id_is_refused(log, tmp_path, gm_repo):
    path = scored(tmp_path, log, lambda lines: lines[5].update(id="not-sampled"))
    assert f"{path}:6: id 'not-sampled' is not in this sample" in refused(gm_repo, path)


def test_a_duplicated_id_is_refused_naming_both_lines(log, tmp_path, gm_repo):
    path = scored(tmp_path, log, lambda lines: lines.append(dict(lines[1])))
    assert f"{path}:11: id '{json.loads(path.read_text().splitlines()[1])['id']}' is scored twice " \
           f"(first at {path}:2)" in refused(gm_repo, path)


def test_a_line_without_a_reviewer_is_refused(log, tmp_path, gm_repo):
    path = scored(tmp_path, log, lambda lines: lines[1].update(reviewer=" "))
    assert f"{path}:2: id" in refused(gm_repo, path) and "no reviewer named" in refused(gm_repo, path)


def test_a_rubric_missing_from_params_is_refused_before_sampling(log, tmp_path, gm_repo):
    params = gm_repo / "params.yaml"
    params.write_text(params.read_text()[: params.read_text().index("\nreview:") + 1])
    before = snapshot_tree(gm_repo)
    result = gm("sample", "chat", "--log", str(log), "--n", "5", "-o", str(tmp_path / "r.jsonl"))
    assert result.exit_code == 3 and "no review.rubric: a sample needs the rubric its reviewers score against" \
        in result.stderr
    assert not (tmp_path / "r.jsonl").exists() and snapshot_tree(gm_repo) == before


def test_sample_never_overwrites_a_file_git_does_not_hold(log, gm_repo):
    (gm_repo / "mine.jsonl").write_text("notes\n")
    result = gm("sample", "chat", "--log", str(log), "--n", "5", "-o", "mine.jsonl")
    assert result.exit_code == 3 and "mine.jsonl exists and git does not hold it" in result.stderr
    assert (gm_repo / "mine.jsonl").read_text() == "notes\n"
