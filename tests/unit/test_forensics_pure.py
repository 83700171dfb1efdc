"""The pure parts of blame, bisect and weights-diff: no git, no files."""
from __future__ import annotations

import math

import pytest

from gitmodel import bisect, blame, weightsdiff
from gitmodel.gguf import ArraySummary, StringSummary
from gitmodel.tensordiff import Sums


def test_metadata_changes_added_removed_changed_and_the_template_first():
    old = {"general.name": "a", "general.gone": 1, "tokenizer.chat_template": "x\ny\n", "n": 2.0}
    new = {"general.name": "b", "tokenizer.chat_template": "x\nz\n", "n": 2.0, "general.new": [1, 2]}
    changes = weightsdiff.metadata_changes(old, new)
    assert [(c.key, c.change) for c in changes] == [
        ("tokenizer.chat_template", "changed"), ("general.name", "changed"), ("general.gone", "removed"),
        ("general.new", "added")]
    assert changes[0].unified_diff == ["--- a/tokenizer.chat_template", "+++ b/tokenizer.chat_template",
                                       "@@ -1,2 +1,2 @@", " x", "-y", "+z"]
    assert changes[0].area == "chat template"


def test_summarised_values_compare_by_their_bytes():
    old = {"tokenizer.ggml.tokens": ArraySummary("string", 100)}
    new = {"tokenizer.ggml.tokens": ArraySummary("string", 100)}
    assert weightsdiff.metadata_changes(old, new, lambda key: True) == []
    [change] = weightsdiff.metadata_changes(old, new, lambda key: False)
    assert change.area == "tokenizer" and change.old == change.new == "[100 × string]"
    assert weightsdiff.shown(StringSummary(5_000_000)) == "<string of 5000000 bytes>"


def test_a_value_of_another_type_is_a_change():
    [change] = weightsdiff.metadata_changes({"k": 1}, {"k": True})
    assert change.change == "changed"
    assert weightsdiff.metadata_changes({"k": math.nan}, {"k": math.nan}) == []


@pytest.mark.parametrize("name, block", [("blk.12.attn_q.weight", "blk.12"), ("output.weight", "output"),
                                          ("token_embd.weight", "token_embd"), ("rope_freqs", "rope_freqs")])
def test_block_of(name, block):
    assert weightsdiff.block_of(name) == block


def test_sums():
    s = Sums(aa=4.0, bb=9.0, ab=6.0, dd=1.0, max_abs=1.0)
    assert s.relative_l2 == 0.5 and s.cosine == 1.0
    assert Sums().relative_l2 == 0.0 and Sums().cosine == 1.0
    assert Sums(aa=0.0, bb=1.0, dd=1.0).relative_l2 is None and Sums(aa=0.0, bb=1.0).cosine is None


@pytest.mark.parametrize("n", [1, 2, 3, 5, 8, 13, 100])
def test_search_finds_the_first_bad_within_log2_questions(n):
    for first in range(n):
        asked = []

        def is_bad(i):
            asked.append(i)
            return i >= first

        assert bisect.search(n, is_bad) == first
        assert len(asked) <= (math.ceil(math.log2(n)) if n > 1 else 0)


def test_md5_changes_skips_commits_that_keep_the_md5():
    md5s = {"a": "1", "b": "1", "c": "2", "d": None, "e": "2", "f": "1"}
    assert bisect.md5_changes(list(md5s), md5s, "1") == ["c", "f"]


def test_lineage_changes():
    old = {"dataset": {"path": "d.jsonl", "md5": "x"}, "params": {"lr": 1}, "base_model": "b"}
    new = {"dataset": {"path": "d.jsonl", "md5": "y"}, "params": {"lr": 2, "epochs": 3}, "base_model": "b"}
    assert bisect.lineage_changes(old, new) == [
        {"key": "dataset.md5", "old": "x", "new": "y"}, {"key": "params.lr", "old": 1, "new": 2},
        {"key": "params.epochs", "old": None, "new": 3}]


def test_find_record_parses_only_the_line_of_the_id():
    data = b'{"id":"r1","label":"a"}\n{"id":"r10","label":"b"}\nnot json at all\n{"id":"r1x","note":"r1"}\n'
    assert blame.find_record(data, "r1") == {"id": "r1", "label": "a"}
    assert blame.find_record(data, "r10") == {"id": "r10", "label": "b"}
    assert blame.find_record(data, "r2") is None and blame.find_record(None, "r1") is None
    assert blame.find_record('{"id":"é1","label":"x"}\n'.encode(), "é1")["label"] == "x"


def test_mark_changes_against_the_row_above_with_an_answer():
    rows = [blame.BlameRow("v1", "c1", record={"label": "a", "correct": True}),
            blame.BlameRow("v2", "c2", note="no stored result"),
            blame.BlameRow("v3", "c3", record={"label": "b", "correct": False}),
            blame.BlameRow("v4", "c4", record={"label": "c", "correct": False})]
    blame.mark_changes(rows)
    assert [(r.answer_changed, r.correct_flipped) for r in rows] == [
        (False, False), (False, False), (True, True), (True, False)]


def test_judge_of_an_example_without_expected_compares_with_good():
    judge = bisect.Judge({}, example_id="g", good_record={"output": "hello", "label": None, "correct": None})
    assert judge.example({"output": "hello", "label": None, "correct": None})[0] is False
    assert judge.example({"output": "bye", "label": None, "correct": None})[0] is True
