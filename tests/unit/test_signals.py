"""The signals the monitors measure: one definition for drift and canary-check."""
from __future__ import annotations

from gitmodel import signals


def test_the_signals_of_a_record():
    record = {"input": "where is  my refund", "output": "I'm sorry, I cannot help", "label": None,
              "confidence": None, "version": "v1.2.0", "category": "billing"}
    named = {s.name: signals.value(record, s) for s in signals.signals_for(["region"])}
    assert named == {"input.chars": 19, "input.words": 4, "input.category": "billing", "input.region": "(missing)",
                     "output.chars": 24, "output.label": None, "output.confidence": None,
                     "output.refusal": "yes", "output.version": "v1.2.0"}


def test_refusals_are_openings_not_words_inside():
    assert signals.is_refusal("  As an AI, I won't")
    assert not signals.is_refusal("The refund said: I cannot wait")


def test_an_eval_answer_becomes_a_record_without_the_expected_answer():
    example = {"id": "r1", "input": "great", "expected": "pos", "labels": ["pos", "neg"], "category": "a"}
    record = signals.from_eval(example, {"id": "r1", "output": "pos", "label": "pos", "confidence": 0.9}, "v1")
    assert record == {"id": "r1", "input": "great", "category": "a", "output": "pos", "label": "pos",
                      "confidence": 0.9, "version": "v1"}
    label = next(s for s in signals.BUILTIN if s.name == "output.label")
    assert signals.values([record, {"input": "x"}], label) == ["pos"]


def test_each_column_gives_what_its_getter_gives_record_by_record():
    records = [
        {"input": "where is  my refund", "output": "I'm sorry, I cannot help", "label": "neg", "confidence": 0.5,
         "version": "v1", "category": "billing", "region": 3},
        {"input": None, "output": None, "label": None, "confidence": None, "category": None},
        {"input": "", "output": " positive ", "label": 1, "confidence": 1, "version": 2, "region": True},
        {"output": "  As an AI", "label": True, "region": ["eu"], "category": {"a": 1}},
        *[{"input": "x y", "output": "positive", "label": "positive", "confidence": 0.9}] * 8,   # repeated texts
    ]
    for signal in signals.signals_for(["region"]):
        get = signals.getter(signal)
        assert signals.column(signal)(records) == [get(r) for r in records], signal.name
