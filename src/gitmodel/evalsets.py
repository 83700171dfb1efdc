"""Eval sets: reading and validating ``evalsets/<name>.jsonl``.

Every line is checked against the JSON Schema shipped in the package; errors
name ``file:line`` and the field. Lines are read with a size cap so that a
hostile or broken file (one 10 GB line) is refused without being read whole.
"""
from __future__ import annotations

import json
import re
from functools import lru_cache
from pathlib import Path
from typing import Iterator

from gitmodel import jsonio
from gitmodel.errors import InvalidEvalSet
from gitmodel.runners.base import Example

DEFAULT_MAX_LINE_BYTES = 1024 * 1024


@lru_cache(maxsize=None)
def _validator():
    import jsonschema
    from gitmodel.schemas import load

    schema = load("evalset")
    return jsonschema.Draft202012Validator(schema)


def _field_of(error) -> str:
    if error.validator == "required":
        # "'id' is a required property" -> the missing field is the subject
        return str(error.message.split("'")[1]) if "'" in error.message else "?"
    path = [str(p) for p in error.absolute_path]
    return ".".join(path) if path else "(line)"


def _describe(error) -> str:
    field = _field_of(error)
    if error.validator == "required":
        return f"missing required field '{field}'"
    if error.validator == "type":
        expected = error.validator_value
        got = type(error.instance).__name__
        return f"field '{field}': expected {expected}, got {got} {json.dumps(error.instance)[:60]}"
    if error.validator == "uniqueItems":
        return f"field '{field}': labels must be unique"
    if error.validator == "minItems":
        return f"field '{field}': needs at least {error.validator_value} labels"
    if error.validator == "minLength":
        return f"field '{field}': must not be empty"
    return f"field '{field}': {error.message}"


def iter_lines(path: Path, max_line_bytes: int = DEFAULT_MAX_LINE_BYTES) -> Iterator[tuple[int, bytes]]:
    """(line number, raw bytes without newline), refusing any line over the cap.

    ``readline(limit)`` never reads more than ``limit`` bytes, so an oversized
    line is detected after reading at most cap + 2 of its bytes.
    """
    with open(path, "rb") as f:
        number = 0
        while True:
            raw = f.readline(max_line_bytes + 2)   # the line, and room for its \r\n
            if not raw:
                return
            number += 1
            if len(raw) > max_line_bytes and not raw.endswith(b"\n") or len(raw.rstrip(b"\r\n")) > max_line_bytes:
                raise InvalidEvalSet(
                    path, number,
                    f"line is longer than {max_line_bytes} bytes",
                    hint="raise eval.max_line_bytes in params.yaml if such long inputs are intended",
                )
            yield number, raw.rstrip(b"\r\n")


def _plainly_valid(obj: dict) -> bool:
    """True only for lines the schema certainly accepts (the common case), checked without jsonschema.

    Anything else goes through the schema validator, which stays the authority
    and words the error; this only saves ~0.2 ms per line on large eval sets.
    """
    id_, input_ = obj.get("id"), obj.get("input")
    if type(id_) is not str or not id_ or type(input_) is not str:
        return False
    if "expected" in obj and type(obj["expected"]) is not str:
        return False
    if "category" in obj and (type(obj["category"]) is not str or not obj["category"]):
        return False
    if "scorer" in obj and (type(obj["scorer"]) is not str or not obj["scorer"]):
        return False
    if "labels" in obj:
        labels = obj["labels"]
        if (type(labels) is not list or len(labels) < 2 or len(set(map(repr, labels))) != len(labels)
                or any(type(x) is not str or not x for x in labels)):
            return False
    return True


# A \uD800-\uDFFF escape: JSON lets it through, but alone (not as a pair) it is
# no character at all, and the text cannot be encoded to reach a model.
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")


def _surrogate_in(text: str) -> str | None:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as e:
        return f"\\u{ord(text[e.start]):04x}"
    return None


def _lone_surrogate(value, field: str) -> tuple[str, str] | None:
    """(field, the escaped surrogate) of the first string, key included, holding a lone surrogate."""
    if isinstance(value, str):
        found = _surrogate_in(value)
        return (field, found) if found else None
    if isinstance(value, dict):
        for key, item in value.items():
            found = _surrogate_in(key)
            if found:
                return (f"{field}.(a key)" if field else "(a key)"), found
            found = _lone_surrogate(item, f"{field}.{key}" if field else key)
            if found:
                return found
    if isinstance(value, list):
        for i, item in enumerate(value):
            found = _lone_surrogate(item, f"{field}[{i}]")
            if found:
                return found
    return None


def _json_problem(e: json.JSONDecodeError) -> str:
    if isinstance(e, jsonio.DuplicateKeyError):
        return f"duplicate key {e.key!r} at column {e.colno} (first at column {e.first_colno})"
    # some of json's messages end in "at" ("Unterminated string starting at")
    msg = e.msg[:-3] if e.msg.endswith(" at") else e.msg
    return f"malformed JSON: {msg} at column {e.colno}"


def parse_line(path: Path, number: int, raw: bytes) -> Example:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise InvalidEvalSet(path, number, f"not valid UTF-8 (byte 0x{raw[e.start]:02x} at column {e.start + 1})",
                             hint="re-encode the file as UTF-8") from None
    try:
        obj = jsonio.loads(text)
    except json.JSONDecodeError as e:
        hint = "keep one of the two (the line means one thing only)" if isinstance(e, jsonio.DuplicateKeyError) else None
        raise InvalidEvalSet(path, number, _json_problem(e), hint=hint) from None
    if not isinstance(obj, dict):
        raise InvalidEvalSet(path, number, f"expected a JSON object, got {type(obj).__name__}")
    if _SURROGATE_ESCAPE.search(raw):
        found = _lone_surrogate(obj, "")
        if found:
            field, escape = found
            raise InvalidEvalSet(path, number, f"field '{field}': a lone surrogate {escape} is not a character "
                                               "(it cannot be encoded as UTF-8)",
                                 hint="write the character itself, or a complete surrogate pair")
    if not _plainly_valid(obj):
        errors = sorted(_validator().iter_errors(obj), key=lambda e: (list(e.absolute_path), e.validator))
        if errors:
            raise InvalidEvalSet(path, number, _describe(errors[0]))
    labels = tuple(obj["labels"]) if "labels" in obj else None
    expected = obj.get("expected")
    if labels is not None and expected is not None and expected not in labels:
        raise InvalidEvalSet(path, number, f"field 'expected': {expected!r} is not among labels {list(labels)}")
    return Example(id=obj["id"], input=obj["input"], expected=expected, labels=labels,
                   category=obj.get("category"), line=number, fields=obj, scorer=obj.get("scorer"))


def load(path: Path | str, max_line_bytes: int = DEFAULT_MAX_LINE_BYTES) -> list[Example]:
    """Every example of an eval set, validated; raises InvalidEvalSet on the first bad line."""
    path = Path(path)
    if not path.is_file():
        raise InvalidEvalSet(path, None, "no such file")
    examples: list[Example] = []
    first_line_of: dict[str, int] = {}
    for number, raw in iter_lines(path, max_line_bytes):
        if not raw.strip():
            continue  # blank lines (often a trailing one) carry no example
        example = parse_line(path, number, raw)
        if example.id in first_line_of:
            raise InvalidEvalSet(path, number,
                                 f"field 'id': duplicate id {example.id!r} (first used on line {first_line_of[example.id]})")
        first_line_of[example.id] = number
        examples.append(example)
    if not examples:
        raise InvalidEvalSet(path, None, "the eval set is empty (no examples)",
                             hint='add one JSON object per line, e.g. {"id": "1", "input": "...", "expected": "..."}')
    return examples
