"""Strict JSON reading: a duplicate key is an error, not "the last one wins".

``json.loads`` keeps the last of two equal keys without a word, so a file
that says ``"expected"`` twice means whatever its last writer typed. Every
reader of a file a person may edit (eval sets, metrics, review files, logs)
reads through :func:`loads`, which refuses the duplicate and names its line
and column.

Detection costs one ``object_pairs_hook`` call per object on the C scanner;
finding the duplicate's position re-scans the text, on the error path only.
"""
from __future__ import annotations

import json
from json.decoder import scanstring
from json.scanner import py_make_scanner


class DuplicateKeyError(json.JSONDecodeError):
    """A JSON object holds the same key twice. ``lineno`` / ``colno`` point at the second one."""

    def __init__(self, key: str, doc: str, pos: int, first_pos: int | None = None):
        super().__init__(f"duplicate key {key!r}", doc, pos)
        self.key = key
        self.first_pos = first_pos

    @property
    def first_colno(self) -> int | None:
        if self.first_pos is None:
            return None
        return self.first_pos - self.doc.rfind("\n", 0, self.first_pos)

    @property
    def first_lineno(self) -> int | None:
        return None if self.first_pos is None else self.doc.count("\n", 0, self.first_pos) + 1


class _Duplicate(Exception):
    def __init__(self, key: str):
        self.key = key


def _unique(pairs: list) -> dict:
    obj = dict(pairs)
    if len(obj) != len(pairs):
        seen = set()
        for key, _ in pairs:
            if key in seen:
                raise _Duplicate(key)
            seen.add(key)
    return obj


def loads(text: str | bytes | bytearray):
    """``json.loads`` that raises :class:`DuplicateKeyError` (a ``JSONDecodeError``) on a repeated key."""
    try:
        return json.loads(text, object_pairs_hook=_unique)
    except _Duplicate as d:
        raise _locate(_text(text), d.key) from None
    except RecursionError:
        raise json.JSONDecodeError("nested deeper than the JSON reader allows", _text(text), 0) from None


def _text(text: str | bytes | bytearray) -> str:
    return bytes(text).decode("utf-8", "replace") if isinstance(text, (bytes, bytearray)) else text


def load_file(path) -> object:
    """The JSON document in ``path``, read strictly (see :func:`loads`)."""
    with open(path, "rb") as f:
        return loads(f.read())


_WHITESPACE = " \t\n\r"


def _locate(doc: str, fallback_key: str) -> DuplicateKeyError:
    """The error for the first duplicate key in document order, with its position.

    The pure-Python scanner is used because it lets ``parse_object`` be
    replaced: ours records where each key starts before handing over to the
    standard object parser.
    """
    found: list[DuplicateKeyError] = []

    def skip(s: str, pos: int) -> int:
        while pos < len(s) and s[pos] in _WHITESPACE:
            pos += 1
        return pos

    def parse_object(s_and_end, strict, scan_once, object_hook, object_pairs_hook, memo=None):
        # Each value is scanned once (nested objects come back here), so the
        # re-scan stays linear however deep the document nests.
        s, pos = s_and_end
        first_at: dict[str, int] = {}
        pos = skip(s, pos)
        if s[pos:pos + 1] == "}":
            return {}, pos + 1
        while True:
            if s[pos:pos + 1] != '"':
                raise ValueError("not an object key")
            key, after = scanstring(s, pos + 1, strict)
            if key in first_at:
                raise DuplicateKeyError(key, s, pos, first_at[key])
            first_at[key] = pos
            pos = skip(s, after)
            if s[pos:pos + 1] != ":":
                raise ValueError("no colon")
            _, pos = scan_once(s, skip(s, pos + 1))
            pos = skip(s, pos)
            if s[pos:pos + 1] == "}":
                return {}, pos + 1
            if s[pos:pos + 1] != ",":
                raise ValueError("no comma")
            pos = skip(s, pos + 1)

    decoder = json.JSONDecoder()
    decoder.parse_object = parse_object
    scan = py_make_scanner(decoder)
    try:
        scan(doc, skip(doc, 0))
    except DuplicateKeyError as e:
        found.append(e)
    except (ValueError, StopIteration, RecursionError):
        pass
    return found[0] if found else DuplicateKeyError(fallback_key, doc, 0)
