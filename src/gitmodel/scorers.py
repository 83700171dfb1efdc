"""Scorers: whether a generation is right, for each kind of answer.

``eval.scorer`` names the eval set's scorer; a line's ``"scorer"`` field overrides
it for that line. A classification is never scored here: its answer is the label.

| name | right when |
|---|---|
| ``exact`` | the output equals ``expected``, both whitespace-stripped |
| ``contains`` | ``expected`` (stripped) appears in the output |
| ``regex`` | ``expected`` is a Python regular expression found in the output |
| ``json`` | the output parses as JSON, and equals ``expected`` when that is JSON too |
| ``json_schema`` | the output parses as JSON and validates against ``eval.json_schema`` |
| ``number`` | the first number in the output is ``expected`` within ``eval.number_tolerance`` |
| ``python:module:function`` | ``function(output, example)`` returns True (the team's own) |

Everything a scorer needs (patterns, schema, the team's function) is checked in
:func:`prepare`, before a runner starts; a scorer that fails on an example is an
error naming the scorer and the example, never a silent "wrong".
"""
from __future__ import annotations

import importlib
import json
import math
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

from gitmodel.errors import ScorerError
from gitmodel.runners.base import Example, Prediction

BUILTIN = ("exact", "contains", "regex", "json", "json_schema", "number")
PYTHON_PREFIX = "python:"

# The first number of a text: an optional sign, digits with optional thousands commas, decimals, exponent.
_NUMBER = re.compile(r"[-+]?(?:\d{1,3}(?:,\d{3})+|\d+)?(?:\.\d+)?(?:[eE][-+]?\d+)?")


def _where(example: Example) -> str:
    return f"example {example.id!r}" + (f" (line {example.line})" if example.line else "")


def _stripped_expected(example: Example) -> str | None:
    return None if example.expected is None else example.expected.strip()


def first_number(text: str) -> float | None:
    for match in _NUMBER.finditer(text):
        token = match.group()
        if any(c.isdigit() for c in token):
            return float(token.replace(",", ""))
    return None


def _parsed_json(text: str) -> tuple[bool, Any]:
    try:
        return True, json.loads(text.strip())
    except ValueError:
        return False, None


@dataclass
class Scoring:
    """The scorers of one eval run, prepared: ``verdict(example, output)`` judges one generation."""

    default: str
    schema: dict | None = None
    number_tolerance: float = 1e-6
    _patterns: dict[str, re.Pattern] = field(default_factory=dict)
    _functions: dict[str, Callable] = field(default_factory=dict)
    _validator: Any = None

    def name_for(self, example: Example) -> str:
        return example.scorer or self.default

    def verdict(self, example: Example, output: str) -> bool | None:
        name = self.name_for(example)
        expected = _stripped_expected(example)
        if name == "exact":
            return None if expected is None else output.strip() == expected
        if name == "contains":
            return None if expected is None else expected in output
        if name == "regex":
            return None if example.expected is None else bool(self._patterns[example.expected].search(output))
        if name == "json":
            ok, value = _parsed_json(output)
            if not ok or example.expected is None:
                return ok
            wanted_ok, wanted = _parsed_json(example.expected)
            return value == wanted if wanted_ok else ok
        if name == "json_schema":
            ok, value = _parsed_json(output)
            return ok and self._validator.is_valid(value)
        if name == "number":
            if example.expected is None:
                return None
            got = first_number(output)
            return got is not None and abs(got - first_number(example.expected)) <= self.number_tolerance
        function = self._functions[name]
        try:
            result = function(output, dict(example.fields or {"id": example.id, "input": example.input,
                                                              "expected": example.expected}))
        except Exception as e:
            raise ScorerError(f"scorer {name} raised on {_where(example)}: {type(e).__name__}: {e}",
                              hint="fix the function: a scorer returns True or False for every output") from None
        if not isinstance(result, bool):
            raise ScorerError(f"scorer {name} returned {result!r} for {_where(example)}, not True or False",
                              hint="a scorer returns a bool: whether the output is right")
        return result

    def score(self, examples: Sequence[Example], predictions: Sequence[Prediction]) -> None:
        """Set each generation's ``verdict``."""
        for example, prediction in zip(examples, predictions):
            if not example.is_classification:
                prediction.verdict = self.verdict(example, prediction.output)

    def counts(self, examples: Sequence[Example]) -> dict[str, int]:
        """How many generations each scorer judged (recorded with the result)."""
        counts: dict[str, int] = {}
        for example in examples:
            if not example.is_classification:
                name = self.name_for(example)
                counts[name] = counts.get(name, 0) + 1
        return dict(sorted(counts.items()))


def _check_name(name: Any, where: str) -> str:
    if not isinstance(name, str) or not (name in BUILTIN or name.startswith(PYTHON_PREFIX)):
        raise ScorerError(f"{where}: unknown scorer {name!r}",
                          hint=f"choose one of {', '.join(BUILTIN)} or python:module:function")
    return name


def _load_schema(path: Path | None, where: str):
    import jsonschema

    if path is None:
        raise ScorerError(f"{where}: the json_schema scorer needs eval.json_schema, the path of a JSON Schema file",
                          hint="set eval.json_schema: schemas/answer.schema.json (relative to the repository root)")
    if not path.is_file():
        raise ScorerError(f"eval.json_schema: the schema file {path} of the json_schema scorer does not exist",
                          hint="fix the path (relative to the repository root), or commit the schema file")
    try:
        schema = json.loads(path.read_text("utf-8"))
        cls = jsonschema.validators.validator_for(schema)
        cls.check_schema(schema)
    except (ValueError, UnicodeDecodeError) as e:
        raise ScorerError(f"eval.json_schema: {path} is not valid JSON: {e}",
                          hint="the json_schema scorer reads a JSON Schema file") from None
    except jsonschema.SchemaError as e:
        raise ScorerError(f"eval.json_schema: {path} is not a valid JSON Schema: {e.message}",
                          hint="fix the schema (see json-schema.org)") from None
    return schema, cls(schema)


def _import_function(name: str, root: Path) -> Callable:
    target = name[len(PYTHON_PREFIX):]
    module_name, _, function_name = target.partition(":")
    if not module_name or not function_name:
        raise ScorerError(f"scorer {name}: expected python:module:function", hint="e.g. python:myscorers:is_polite")
    if str(root) not in sys.path:
        sys.path.insert(0, str(root))
    try:
        module = importlib.import_module(module_name)
        function = getattr(module, function_name)
    except Exception as e:
        raise ScorerError(f"scorer {name} cannot be imported: {type(e).__name__}: {e}",
                          hint=f"make {module_name} importable from the repository root and define "
                               f"{function_name}(output, example) -> bool") from None
    if not callable(function):
        raise ScorerError(f"scorer {name}: {function_name} is not a function")
    return function


def prepare(examples: Sequence[Example], default: str, *, root: Path, schema_path: Path | None = None,
            number_tolerance: float = 1e-6, where: str = "params.yaml: eval.scorer") -> Scoring:
    """The scorers the generations of ``examples`` need, each checked before any runs.

    Raises ScorerError naming an unknown scorer, an invalid regex (and its example), a missing or
    invalid schema file, a python scorer that does not import, or an expected value that is no number.
    """
    scoring = Scoring(_check_name(default, where), number_tolerance=float(number_tolerance))
    if isinstance(number_tolerance, bool) or not math.isfinite(scoring.number_tolerance) \
            or scoring.number_tolerance < 0:
        raise ScorerError(f"eval.number_tolerance must be a number >= 0, got {number_tolerance!r}")
    for example in examples:
        if example.is_classification:
            continue
        name = _check_name(example.scorer, f"{_where(example)}: field 'scorer'") if example.scorer else scoring.default
        if name == "regex" and example.expected is not None and example.expected not in scoring._patterns:
            try:
                scoring._patterns[example.expected] = re.compile(example.expected)
            except re.error as e:
                raise ScorerError(f"scorer regex: {_where(example)}: expected {example.expected!r} is not a valid "
                                  f"regular expression: {e}", hint="fix the pattern (Python `re` syntax)") from None
        elif name == "json_schema" and scoring._validator is None:
            scoring.schema, scoring._validator = _load_schema(schema_path, where)
        elif name == "number" and example.expected is not None and first_number(example.expected) is None:
            raise ScorerError(f"scorer number: {_where(example)}: expected {example.expected!r} is not a number",
                              hint="the number scorer compares the first number of the output with `expected`")
        elif name.startswith(PYTHON_PREFIX) and name not in scoring._functions:
            scoring._functions[name] = _import_function(name, Path(root))
    return scoring
