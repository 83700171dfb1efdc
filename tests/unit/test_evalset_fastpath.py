"""The fast path of eval set validation never accepts what the JSON Schema refuses."""
from __future__ import annotations

import itertools

import jsonschema

from gitmodel import evalsets
from gitmodel.schemas import load

VALUES = [None, "", "x", 0, 1.5, True, [], ["a"], ["a", "b"], ["a", "a"], ["a", ""], ["a", 1], {"k": "v"}]


def test_fast_path_agrees_with_the_schema():
    validator = jsonschema.Draft202012Validator(load("evalset"))
    checked = 0
    for id_, input_, expected, labels, category in itertools.product(
            ["r1", "", 7, None], ["text", "", 3, None], VALUES[:6], VALUES, ["food", "", 2, None]):
        obj = {k: v for k, v in (("id", id_), ("input", input_), ("expected", expected), ("labels", labels),
                                 ("category", category)) if v is not None}
        if evalsets._plainly_valid(obj):
            assert validator.is_valid(obj), obj
            checked += 1
    assert checked > 20


# -- what JSON itself lets through: duplicate keys and lone surrogates ---------------------------------

import json  # noqa: E402
from pathlib import Path  # noqa: E402

import pytest  # noqa: E402

from gitmodel import jsonio  # noqa: E402
from gitmodel.errors import InvalidEvalSet  # noqa: E402

PATH = Path("evalsets/x.jsonl")


def refused(raw: bytes) -> InvalidEvalSet:
    with pytest.raises(InvalidEvalSet) as caught:
        evalsets.parse_line(PATH, 7, raw)
    return caught.value


@pytest.mark.parametrize("raw, key, column, first", [
    # a line the fast path would accept as it is (the second "expected" would silently win)
    (b'{"id": "a", "input": "x", "expected": "positive", "expected": "negative"}', "expected", 51, 27),
    # a line that goes through the schema validator (labels present)
    (b'{"id": "a", "labels": ["p", "n"], "input": "x", "labels": ["n", "p"]}', "labels", 49, 13),
    (b'{"id": "a", "input": "x", "id": "b"}', "id", 27, 2),
    (b'{"id": "a", "input": "x", "meta": {"k": 1, "k": 2}}', "k", 44, 36),
    # the same key spelled with an escape is the same key
    (b'{"id": "a", "input": "x", "\\u0069d": "b"}', "id", 27, 2),
])
def test_a_duplicate_key_is_refused_naming_line_and_key(raw, key, column, first):
    json.loads(raw)                       # plain json takes it: the last key wins
    error = refused(raw)
    assert error.line == 7
    assert error.problem == f"duplicate key {key!r} at column {column} (first at column {first})"
    assert str(error).startswith(f"{PATH}:7: duplicate key {key!r}")
    assert error.hint


@pytest.mark.parametrize("raw, field, escape", [
    (b'{"id": "a", "input": "bad \\ud800 here"}', "input", "\\ud800"),
    (b'{"id": "\\udfff", "input": "x"}', "id", "\\udfff"),
    (b'{"id": "a", "input": "x", "expected": "\\uDC00"}', "expected", "\\udc00"),
    (b'{"id": "a", "input": "x", "labels": ["yes", "n\\ud83do"]}', "labels[1]", "\\ud83d"),
    (b'{"id": "a", "input": "x", "category": "\\ud800"}', "category", "\\ud800"),
    (b'{"id": "a", "input": "x", "extra": {"note": "\\ud800"}}', "extra.note", "\\ud800"),
    (b'{"id": "a", "input": "x", "\\ud800": 1}', "(a key)", "\\ud800"),
    # a high surrogate followed by a non-surrogate escape is still alone
    (b'{"id": "a", "input": "\\ud800\\u0041"}', "input", "\\ud800"),
])
def test_a_lone_surrogate_is_refused_naming_line_and_field(raw, field, escape):
    error = refused(raw)
    assert error.line == 7
    assert error.problem.startswith(f"field '{field}': a lone surrogate {escape} is not a character")


def test_a_surrogate_pair_is_a_character():
    example = evalsets.parse_line(PATH, 1, b'{"id": "a", "input": "smile \\ud83d\\ude00"}')
    assert example.input == "smile \U0001F600"
    example.input.encode("utf-8")


@pytest.mark.parametrize("raw, message", [
    (b'{"id": "a", "input": "x', "malformed JSON: Unterminated string starting at column 22"),
    (b'{"id": "a", "input": "x\ty"}', "malformed JSON: Invalid control character at column 24"),
])
def test_json_messages_that_end_in_at_are_not_doubled(raw, message):
    assert refused(raw).problem == message


def test_strict_loader_names_line_and_column_in_a_multiline_document():
    doc = '{\n  "metrics": {\n    "accuracy": 0.75,\n    "n": 4,\n    "accuracy": 0.99\n  }\n}\n'
    with pytest.raises(jsonio.DuplicateKeyError) as caught:
        jsonio.loads(doc)
    e = caught.value
    assert (e.key, e.lineno, e.colno, e.first_lineno, e.first_colno) == ("accuracy", 5, 5, 3, 5)
    second = doc.rindex('"accuracy"')
    assert str(e) == f"duplicate key 'accuracy': line 5 column 5 (char {second})"
    assert isinstance(e, json.JSONDecodeError)        # callers that catch ValueError keep working


def test_strict_loader_reads_what_json_reads():
    for text in ['{}', '[]', '{"a": {"a": 1}, "b": [{"a": 2}, {"a": 3}]}', '"x"', '1.5', 'null']:
        assert jsonio.loads(text) == json.loads(text)


def test_strict_loader_refuses_deep_nesting_as_a_json_error():
    with pytest.raises(json.JSONDecodeError, match="nested deeper"):
        jsonio.loads('{"a": ' * 100_000 + "1" + "}" * 100_000)


def test_finding_a_duplicate_stays_linear_in_nesting_depth():
    import time

    depth = 400
    doc = '{"a": ' * depth + '{"k": 1, "k": 2}' + "}" * depth
    started = time.perf_counter()
    with pytest.raises(jsonio.DuplicateKeyError):
        jsonio.loads(doc)
    assert time.perf_counter() - started < 1.0
