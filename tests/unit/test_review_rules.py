"""The human review's part of diff and gate, pure: which group of a review file is a revision's, the two
sides compared, and the gate's rows (tolerance, too few reviews, not reviewed, require_review, tradeoffs)."""
from __future__ import annotations

import pytest

from gitmodel import gaterules, reviewgate, reviewmetric
from gitmodel.errors import InvalidParams, InvalidReview
from gitmodel.gatepolicy import GatePolicy
from gitmodel.reviewmetric import ReviewSide


def review_doc(groups: dict[str, tuple[str | None, int, dict]]) -> dict:
    """A review file with ``groups``: key -> (checkpoint md5, n, means)."""
    return {"kind": reviewmetric.REVIEW_KIND, "rubric": {"scale": [1, 5]}, "reviewers": ["ana"],
            "versions": {k: {"version": None if k.startswith("md5:") else k, "model_md5": md5}
                         for k, (md5, _, _) in groups.items()},
            "metrics": {"mean": {}, "by_category": {},
                        "by_version": {k: {"n": n, "mean": mean, "by_category": {"food": {**mean, "n": n}}}
                                       for k, (_, n, mean) in groups.items()}}}


def side(n: int, **mean) -> ReviewSide:
    return ReviewSide("rev", "metrics/chat/review.json at rev", "v1.0.0", "aa", n, mean)


def test_a_revision_s_review_is_the_group_of_its_checkpoint():
    doc = review_doc({"v1.0.0": ("aa", 30, {"correct": 4.0}), "v1.1.0": ("bb", 25, {"correct": 4.5})})
    found = reviewmetric.side_of("chat@v1.1.0", [("here", doc)], "bb", "v1.1.0")
    assert (found.version, found.n, found.mean, found.source) == ("v1.1.0", 25, {"correct": 4.5}, "here")
    assert found.by_category == {"food": {"correct": 4.5, "n": 25}}


def test_a_group_without_md5_is_matched_by_version_only():
    doc = review_doc({"v2.0.0": (None, 5, {"correct": 3.0})})
    assert reviewmetric.side_of("r", [("f", doc)], "cc", "v2.0.0").n == 5
    assert not reviewmetric.side_of("r", [("f", doc)], "cc", None).reviewed


def test_the_first_file_that_scored_the_checkpoint_wins():
    older = review_doc({"v1.0.0": ("aa", 30, {"correct": 4.0})})
    newer = review_doc({"v1.0.0": ("aa", 40, {"correct": 3.0})})
    assert reviewmetric.side_of("r", [("own", None), ("newer", newer), ("older", older)], "aa", None).source == "newer"


def test_a_checkpoint_nobody_reviewed_says_what_was_reviewed():
    doc = review_doc({"v1.0.0": ("aa", 30, {"correct": 4.0})})
    found = reviewmetric.side_of("chat@v2.0.0", [("metrics/chat/review.json at HEAD", doc)], "ff" * 16, "v2.0.0")
    assert not found.reviewed
    assert found.note == "metrics/chat/review.json at HEAD scored the outputs of v1.0.0, not of v2.0.0"
    assert reviewmetric.side_of("r", [("x", None)], "aa", None).note == "no review imported"


def test_a_review_file_that_is_not_one_is_refused():
    with pytest.raises(InvalidReview, match="metrics/chat/review.json at HEAD: not a git-model review file"):
        reviewmetric.parse(b'{"schema_version": 1, "metrics": {}}', "metrics/chat/review.json at HEAD")
    with pytest.raises(InvalidReview, match="not readable JSON"):
        reviewmetric.parse(b"{", "x")


def test_compare_pairs_criteria_and_categories():
    old = ReviewSide("a", "f", "v1", "aa", 30, {"correct": 4.0, "safe": 5.0}, {"food": {"correct": 4.0, "n": 30}})
    new = ReviewSide("b", "f", "v2", "bb", 20, {"correct": 3.5, "safe": 5.0}, {"food": {"correct": 3.0, "n": 20}})
    diff = reviewmetric.compare("chat", old, new)
    assert [(r.criterion, r.old, r.new, r.change, r.verdict) for r in diff.rows] == [
        ("correct", 4.0, 3.5, -0.5, "worse"), ("safe", 5.0, 5.0, 0.0, "same")]
    assert [(r.category, r.criterion, r.old_n, r.new_n, r.verdict) for r in diff.categories] == [
        ("food", "correct", 30, 20, "worse"), ("food", "safe", 30, 20, None)]
    assert diff.dvc_entry() == {"mean.correct": {"old": 4.0, "new": 3.5, "diff": -0.5},
                                "n": {"old": 30, "new": 20, "diff": -10}}
    nobody = reviewmetric.compare("chat", ReviewSide("a", note="no review imported"), new)
    assert nobody.dvc_entry()["mean.correct"] == {"old": None, "new": 3.5}


def rows(gate) -> dict:
    return {r.metric: (r.verdict, r.rule) for r in gate.rows}


def test_a_drop_within_the_tolerance_passes_and_beyond_it_fails():
    gate = reviewgate.review_gate(side(30, correct=4.0, helpful=4.0), side(30, correct=3.8, helpful=3.7))
    assert gate.judged and not gate.passed
    assert rows(gate) == {"review.correct": ("pass", ">= baseline - 0.25 (n 30 vs 30)"),
                          "review.helpful": ("fail", ">= baseline - 0.25 (n 30 vs 30)")}
    assert gate.failures[0].regression == pytest.approx(0.3)


def test_the_tolerance_comes_from_params():
    policy = GatePolicy.parse({"review_tolerance": 0.5})
    assert reviewgate.review_gate(side(30, helpful=4.0), side(30, helpful=3.6), policy).passed
    policy = GatePolicy.parse({"tolerance": {"review.helpful": 0.1}})
    assert not reviewgate.review_gate(side(30, helpful=4.0), side(30, helpful=3.8), policy).passed


def test_an_accepted_tradeoff_lets_a_drop_through():
    policy = GatePolicy.parse({"accept": [{"metric": "review.*", "max_regression": 1, "rationale": "shorter"}]})
    gate = reviewgate.review_gate(side(30, helpful=4.0), side(30, helpful=3.2), policy)
    assert gate.passed and [r.metric for r in gate.accepted] == ["review.helpful"]
    assert gate.tradeoffs[0].applied_to == ["review.helpful"]


def test_too_few_reviews_are_reported_not_judged():
    gate = reviewgate.review_gate(side(30, helpful=4.0), side(12, helpful=1.0))
    assert gate.passed and not gate.judged
    assert rows(gate)["review.helpful"] == ("info", "not judged: fewer than gate.review_min_n (20) reviews: "
                                                    "candidate 12 (n 30 vs 12)")


def test_a_baseline_nobody_reviewed_is_reported_not_judged():
    gate = reviewgate.review_gate(ReviewSide("b", note="no review imported"), side(30, helpful=4.0))
    assert gate.passed and not gate.judged and gate.note == "baseline not reviewed: no review imported"


def test_a_candidate_nobody_reviewed_is_reported_and_refused_only_when_required():
    nobody = ReviewSide("c", note="no review imported")
    gate = reviewgate.review_gate(side(30, helpful=4.0), nobody)
    assert gate.passed and rows(gate) == {"review": ("info", "not reviewed: no review imported")}
    gate = reviewgate.review_gate(None, None, GatePolicy.parse({"require_review": True}))
    assert not gate.passed and "git model review import" in gate.way_out
    assert rows(gate) == {"review": ("fail", "required (gate.require_review): no review imported")}


@pytest.mark.parametrize("section, message", [
    ({"review_tolerance": -0.1}, "params.yaml: gate.review_tolerance must be a number >= 0, got -0.1"),
    ({"review_min_n": 2.5}, "params.yaml: gate.review_min_n must be a whole number >= 1, got 2.5"),
    ({"require_review": "yes"}, "params.yaml: gate.require_review must be true or false, got 'yes'"),
])
def test_bad_review_settings_are_refused(section, message):
    with pytest.raises(InvalidParams) as e:
        GatePolicy.parse(section)
    assert str(e.value).startswith(message)


def test_the_summary_line_names_the_review():
    gate = reviewgate.review_gate(side(30, helpful=4.0), side(30, helpful=3.0))
    report = gaterules.GateReport([], [], evalset="support")
    assert gaterules.summary_line([report], "v1.0.0 (prod)", gate) == \
        "failed against v1.0.0 (prod): human review: review.helpful"


def test_a_checkpoint_reviewed_before_its_release_is_named_by_the_revision_s_version():
    md5 = "3" * 32
    doc = review_doc({f"md5:{md5}": (md5, 40, {"correct": 4.8})})
    found = reviewmetric.side_of("chat@v1.1.0", [("f", doc)], md5, "v1.1.0")
    assert (found.version, found.group, found.n) == ("v1.1.0", f"md5:{md5}", 40)
    assert reviewmetric.side_of("HEAD", [("f", doc)], md5, None).version == "md5:333333333333"
    assert reviewmetric.side_of("x", [("f", doc)], "4" * 32, "v2.0.0").note == \
        "f scored the outputs of md5:333333333333, not of v2.0.0"
