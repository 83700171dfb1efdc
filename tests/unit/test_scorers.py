"""Scorers of generations: each one's verdicts, per-line overrides, and every broken scorer named."""
from __future__ import annotations

import json

import pytest

from gitmodel import scorers
from gitmodel.errors import ScorerError
from gitmodel.metrics import compute, correct
from gitmodel.runners.base import Example, Prediction


def gen(id, expected, scorer=None, line=0):
    return Example(id=id, input="q", expected=expected, scorer=scorer, line=line,
                   fields={"id": id, "input": "q", "expected": expected})


def verdicts(default, pairs, **kwargs):
    examples = [e for e, _ in pairs]
    scoring = scorers.prepare(examples, default, root=kwargs.pop("root", "."), **kwargs)
    return [scoring.verdict(e, out) for e, out in pairs]


def test_exact_strips_whitespace():
    assert verdicts("exact", [(gen("a", "Paris"), " Paris\n"), (gen("b", "Paris"), "Paris, France"),
                              (gen("c", None), "x")]) == [True, False, None]


def test_contains_finds_the_expected_text():
    assert verdicts("contains", [(gen("a", " Paris "), "It is Paris.\nQuestion:"),
                                 (gen("b", "Paris"), "paris")]) == [True, False]


def test_regex_searches_the_pattern():
    assert verdicts("regex", [(gen("a", r"^\s*(yes|Yes)\b"), " Yes, indeed"),
                              (gen("b", r"\d{3}"), "12")]) == [True, False]


def test_regex_with_an_invalid_pattern_names_the_example():
    with pytest.raises(ScorerError) as err:
        verdicts("regex", [(gen("e7", "(unclosed", line=7), "x")])
    assert err.value.message.startswith("scorer regex: example 'e7' (line 7): expected '(unclosed' is not a valid "
                                        "regular expression: missing ), unterminated subpattern")


def test_json_parses_and_compares_when_expected_is_json():
    assert verdicts("json", [(gen("a", '{"a": 1, "b": [2]}'), ' {"b": [2], "a": 1}\n'),
                             (gen("b", '{"a": 1}'), '{"a": 2}'),
                             (gen("c", None), '{"ok": true}'),
                             (gen("d", None), "{not json"),
                             (gen("e", "plain words"), "[1]")]) == [True, False, True, False, True]


def test_json_schema_validates_outputs(tmp_path):
    schema = tmp_path / "answer.schema.json"
    schema.write_text(json.dumps({"type": "object", "required": ["name"],
                                  "properties": {"name": {"type": "string"}}}))
    got = verdicts("json_schema", [(gen("a", None), '{"name": "Ada"}'), (gen("b", None), '{"name": 3}'),
                                   (gen("c", None), "nope")], schema_path=schema)
    assert got == [True, False, False]


def test_json_schema_missing_file_is_named(tmp_path):
    with pytest.raises(ScorerError, match=r"the schema file .*missing.json of the json_schema scorer does not exist"):
        verdicts("json_schema", [(gen("a", None), "{}")], schema_path=tmp_path / "missing.json")


def test_json_schema_not_set_is_named():
    with pytest.raises(ScorerError, match="needs eval.json_schema"):
        verdicts("json_schema", [(gen("a", None), "{}")])


@pytest.mark.parametrize("text, problem", [("{broken", "is not valid JSON"),
                                           ('{"type": "no-such-type"}', "is not a valid JSON Schema")])
def test_json_schema_invalid_file_is_named(tmp_path, text, problem):
    schema = tmp_path / "bad.json"
    schema.write_text(text)
    with pytest.raises(ScorerError, match=problem):
        verdicts("json_schema", [(gen("a", None), "{}")], schema_path=schema)


def test_number_compares_the_first_number_within_tolerance():
    got = verdicts("number", [(gen("a", "42"), "The answer is 42.0 (not 41)"), (gen("b", "1234"), "1,234 apples"),
                              (gen("c", "0.5"), "-0.5"), (gen("d", "3"), "no number"),
                              (gen("e", "3.14159"), "3.1416")], number_tolerance=1e-3)
    assert got == [True, True, False, False, True]


def test_number_with_expected_not_a_number_names_the_example():
    with pytest.raises(ScorerError, match="scorer number: example 'a': expected 'many' is not a number"):
        verdicts("number", [(gen("a", "many"), "3")])


def test_a_line_overrides_the_eval_sets_scorer():
    pairs = [(gen("a", "Paris", scorer="contains"), "It is Paris"), (gen("b", "Paris"), "It is Paris")]
    assert verdicts("exact", pairs) == [True, False]


def test_unknown_scorer_is_refused_naming_where():
    with pytest.raises(ScorerError, match=r"params.yaml: eval.scorer: unknown scorer 'fuzzy'"):
        verdicts("fuzzy", [(gen("a", "x"), "x")])
    with pytest.raises(ScorerError, match=r"example 'a' \(line 4\): field 'scorer': unknown scorer 'nope'"):
        verdicts("exact", [(gen("a", "x", scorer="nope", line=4), "x")])


def write_scorer(root, body):
    (root / "teamscore.py").write_text(body)


def test_python_scorer_is_the_teams_own(tmp_path):
    write_scorer(tmp_path, "def polite(output, example):\n    return 'please' in output and example['id'] != 'x'\n")
    got = verdicts("python:teamscore:polite", [(gen("a", None), "please sit"), (gen("b", None), "sit")],
                   root=tmp_path)
    assert got == [True, False]


def test_python_scorer_that_cannot_be_imported_is_named(tmp_path):
    with pytest.raises(ScorerError, match=r"scorer python:nosuchmodule_h10:f cannot be imported: ModuleNotFoundError"):
        verdicts("python:nosuchmodule_h10:f", [(gen("a", None), "x")], root=tmp_path)


def test_python_scorer_that_raises_names_the_example(tmp_path):
    write_scorer(tmp_path, "def boom(output, example):\n    raise KeyError('region')\n")
    (tmp_path / "teamscore2.py").write_text((tmp_path / "teamscore.py").read_text())
    with pytest.raises(ScorerError) as err:
        verdicts("python:teamscore2:boom", [(gen("e3", None, line=3), "x")], root=tmp_path)
    assert err.value.message == "scorer python:teamscore2:boom raised on example 'e3' (line 3): KeyError: 'region'"


def test_python_scorer_returning_no_bool_is_named(tmp_path):
    (tmp_path / "teamscore3.py").write_text("def score(output, example):\n    return 0.7\n")
    with pytest.raises(ScorerError, match="returned 0.7 for example 'a', not True or False"):
        verdicts("python:teamscore3:score", [(gen("a", None), "x")], root=tmp_path)


def test_verdicts_drive_accuracy_and_correct():
    examples = [gen("a", "Paris"), gen("b", "Rome")]
    predictions = [Prediction(output=" It is Paris\n"), Prediction(output="Paris")]
    scoring = scorers.prepare(examples, "contains", root=".")
    scoring.score(examples, predictions)
    assert [correct(e, p) for e, p in zip(examples, predictions)] == [True, False]
    assert compute(examples, predictions)["accuracy"] == 0.5
    assert scoring.counts(examples) == {"contains": 2}


def test_classifications_are_never_scored_by_a_scorer():
    example = Example(id="c", input="x", expected="a", labels=("a", "b"))
    scoring = scorers.prepare([example], "regex", root=".")
    prediction = Prediction(output="a", label="a", confidence=0.9)
    scoring.score([example], [prediction])
    assert prediction.verdict is None and correct(example, prediction) is True
