"""outputs.jsonl records are checked against their schema before the file is written."""
from __future__ import annotations

import json

import pytest

from gitmodel import resultfiles
from gitmodel.errors import InvalidMetrics
from gitmodel.runners.base import Example, Prediction

LABELS = ("positive", "negative")
EXAMPLES = [Example(id=f"r-{i}", input="fine", expected="positive", labels=LABELS) for i in range(3)]
SOURCE = "metrics/chat/support.outputs.jsonl"


def good() -> Prediction:
    return Prediction(output="positive", label="positive", confidence=0.75,
                      scores={"positive": -0.2, "negative": -1.3}, output_tokens=1)


def test_good_records_are_written_as_before():
    predictions = [good() for _ in EXAMPLES]
    data = resultfiles.render_outputs(EXAMPLES, predictions, source=SOURCE)
    assert data == resultfiles.render_outputs(EXAMPLES, predictions)
    assert [json.loads(line)["id"] for line in data.decode().splitlines()] == ["r-0", "r-1", "r-2"]


@pytest.mark.parametrize("field, value, expected", [
    ("confidence", 1.5, "field confidence: 1.5 is greater than the maximum of 1"),
    ("confidence", float("nan"), "field confidence: nan is not a finite number"),
    ("output_tokens", -1, "field output_tokens: -1 is less than the minimum of 0"),
    ("scores", {"positive": float("-inf"), "negative": -1.0}, "field scores.positive: -inf is not a finite number"),
])
def test_a_record_the_schema_refuses_is_named_by_line_and_field(field, value, expected):
    predictions = [good(), good(), good()]
    setattr(predictions[1], field, value)
    with pytest.raises(InvalidMetrics) as e:
        resultfiles.render_outputs(EXAMPLES, predictions, source=SOURCE)
    assert e.value.message.startswith(f"not written: {SOURCE}:2: ")
    assert expected in e.value.message
    assert "'r-1'" in e.value.hint


# -- the fast check in front of jsonschema ---------------------------------------------------------

RECORD = {"id": "r-1", "output": "positive", "label": "positive", "confidence": 0.75, "correct": True,
          "tie": False, "output_tokens": 1, "scores": {"positive": -0.2, "negative": -1.3}}
VALUES = [None, True, False, 0, 1, -1, 3.0, 0.5, 1.5, -0.5, float("nan"), float("inf"), float("-inf"),
          "", "x", [], {}, {"a": 1.0}, {"a": "x"}, {"": 1.0}, {"a": float("nan")}, {"a": True}]


def mutations():
    yield RECORD
    for key in RECORD:
        yield {k: v for k, v in RECORD.items() if k != key}
        for value in VALUES:
            yield {**RECORD, key: value}
    yield {**RECORD, "latency_ms": 1.0}
    yield {**RECORD, "label": None, "confidence": None, "scores": None, "correct": None}
    yield "not an object"


def test_the_fast_check_says_yes_only_to_what_the_schema_accepts():
    from gitmodel import resultfiles, schemacheck

    check = schemacheck.compile_check(resultfiles.load_schema("outputs"))
    assert check is not None, "the outputs schema uses a keyword the fast check does not know"
    validator, yes = resultfiles._validator("outputs"), 0
    for record in mutations():
        # a no only costs time: jsonschema then decides (it takes 3.0 as an integer, the fast check does not)
        if check(record):
            yes += 1
            assert validator.is_valid(record), record
            resultfiles.validate_output(record, "o.jsonl:1")
    assert yes > 20          # the good records do take the fast path


@pytest.mark.parametrize("schema", [
    {"type": "string", "pattern": "^a"},
    {"type": "object", "properties": {"a": {"enum": [1]}}},
    {"type": "object", "additionalProperties": {"format": "date"}},
    {"type": "tuple"},
])
def test_a_schema_with_other_keywords_gets_no_fast_check(schema):
    from gitmodel import schemacheck

    assert schemacheck.compile_check(schema) is None
