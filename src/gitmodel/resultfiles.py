"""The files an eval writes: ``metrics/<model>/<evalset>.json`` (the summary) and
``<evalset>.outputs.jsonl`` (one record per example): their bytes, and their schema.

Validation names the file, the JSON path of the first bad field and what was
expected; a plain predicate compiled from the schema (:mod:`gitmodel.schemacheck`)
says yes to a good outputs record before jsonschema is asked.
"""
from __future__ import annotations

import json
import math
from functools import lru_cache
from pathlib import Path
from typing import Any, Mapping, Sequence

from gitmodel import jsonio
from gitmodel.errors import InvalidMetrics
from gitmodel.metrics import correct
from gitmodel.metricspecs import iter_leaves
from gitmodel.runners.base import Example, Prediction

SCHEMA_VERSION = 1


# --------------------------------------------------------------------------- the bytes written

# Confidences and scores in outputs.jsonl are rounded so that the record is
# stable across the last bits of float arithmetic; 4 decimals still tells
# every flip of an answer apart.
OUTPUT_DECIMALS = 4


def output_record(example: Example, prediction: Prediction) -> dict:
    """One record of outputs.jsonl: fixed key order, rounded floats, no timings."""
    scores = None
    if prediction.scores is not None:
        scores = {k: round(float(v), OUTPUT_DECIMALS) for k, v in prediction.scores.items()}
    return {
        "id": example.id,
        "output": prediction.output,
        "label": prediction.label,
        "confidence": None if prediction.confidence is None else round(float(prediction.confidence), OUTPUT_DECIMALS),
        "correct": correct(example, prediction),
        "tie": bool(prediction.tie),
        "output_tokens": int(prediction.output_tokens),
        "scores": scores,
    }


def render_outputs(examples: Sequence[Example], predictions: Sequence[Prediction],
                   source: str | None = None) -> bytes:
    """The bytes of outputs.jsonl. With ``source`` (the file about to be written), each record is
    first checked against its schema, so a runner's bad value is refused naming the line and field."""
    lines = []
    for n, (example, prediction) in enumerate(zip(examples, predictions), 1):
        record = output_record(example, prediction)
        if source is not None:
            try:
                validate_output(record, f"{source}:{n}")
            except InvalidMetrics as e:
                raise InvalidMetrics(f"not written: {e.message}",
                                     hint=f"the runner's answer to example {example.id!r} cannot be stored; "
                                          "the previous results are untouched") from e
        lines.append(json.dumps(record, ensure_ascii=False, separators=(",", ":"), allow_nan=False) + "\n")
    return "".join(lines).encode("utf-8")


def read_metrics(path: Path, source: str | None = None) -> dict | None:
    """A metrics file, validated; None when it does not exist."""
    if not path.is_file():
        return None
    return parse_metrics(path.read_bytes(), source or str(path))


def parse_metrics(data: bytes, source: str) -> dict:
    """A metrics document from its bytes, validated; ``source`` names it in errors."""
    try:
        doc = jsonio.loads(data)
    except (ValueError, UnicodeDecodeError) as e:
        raise InvalidMetrics(f"{source}: not valid JSON: {e}",
                             hint="re-create it with `git model eval --force`") from None
    validate_metrics(doc, source)
    return doc


# --------------------------------------------------------------------------- schema

_HINT = "the file was edited by hand or written by another git-model version; " \
        "re-run `git model eval ... --force` to rewrite it"


def load_schema(name: str) -> dict:
    """The JSON Schema ``schemas/<name>.schema.json`` shipped in the package (cached).

    ``name`` is ``"metrics"``, ``"outputs"`` or ``"evalset"``. Do not mutate the result.
    """
    from gitmodel.schemas import load  # one loader for every schema, cached there

    return load(name.removesuffix(".schema.json"))


@lru_cache(maxsize=None)
def _validator(name: str):
    import jsonschema

    schema = load_schema(name)
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


@lru_cache(maxsize=None)
def _fast_check(name: str):
    from gitmodel.schemacheck import compile_check

    return compile_check(load_schema(name))


def _json_path(parts: Sequence[Any]) -> str:
    out = ""
    for part in parts:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _message(error) -> tuple[str, str]:
    """(JSON path of the bad field, what was expected) for a jsonschema error."""
    path = list(error.absolute_path)
    if error.validator == "required" and isinstance(error.instance, Mapping):
        missing = [k for k in error.validator_value if k not in error.instance]
        if missing:
            return _json_path(path + [missing[0]]), "required but missing"
    if error.validator == "additionalProperties" and isinstance(error.instance, Mapping):
        allowed = set(error.schema.get("properties", {}))
        extra = sorted(k for k in error.instance if k not in allowed)
        if extra:
            return _json_path(path + [extra[0]]), "unknown field (not in schema_version 1)"
    return _json_path(path), error.message


def _validate(name: str, doc: Any, source: str) -> None:
    from jsonschema.exceptions import best_match

    error = best_match(_validator(name).iter_errors(doc))
    if error is not None:
        path, expected = _message(error)
        where = f"field {path}: " if path else ""
        raise InvalidMetrics(f"{source}: {where}{expected}", hint=_HINT)


def validate_metrics(doc: Any, source: str) -> None:
    """Check a metrics document against metrics.schema.json.

    Raises InvalidMetrics naming ``source``, the JSON path of the first bad field
    and what was expected, e.g. ``metrics/chat/support.json: field
    metrics.accuracy: 'high' is not of type 'number'``. Also refuses NaN and
    infinite numbers, which JSON cannot hold portably.
    """
    _validate("metrics", doc, source)
    for key, value in iter_leaves(doc["metrics"]):
        if not math.isfinite(value):
            raise InvalidMetrics(f"{source}: field metrics.{key}: {value!r} is not a finite number", hint=_HINT)


def validate_output(record: Any, source: str) -> None:
    """Check one outputs.jsonl record against outputs.schema.json.

    ``source`` names where it came from, e.g. ``metrics/chat/support.outputs.jsonl:12``.
    Every line of every eval goes through here: a plain predicate compiled from the schema
    says yes to a good record at a fraction of jsonschema's cost; jsonschema judges the rest.
    """
    check = _fast_check("outputs")
    if check is not None and check(record):
        return
    _validate("outputs", record, source)
    numbers = [("confidence", record["confidence"])]
    numbers += [(f"scores.{label}", v) for label, v in (record["scores"] or {}).items()]
    for field, value in numbers:
        if value is not None and not math.isfinite(value):
            raise InvalidMetrics(f"{source}: field {field}: {value!r} is not a finite number", hint=_HINT)

