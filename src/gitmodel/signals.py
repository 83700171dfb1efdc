"""What the monitors measure on each request: the signals of its input and its output.

One home for the list, so that drift (production against the eval-time baseline) and canary-check
(canary against prod) measure the same things the same way. A signal is continuous (binned by quantiles
of the baseline) or categorical (one bin per value). Its value on a record is ``None`` when the record
does not carry it (no confidence on a generation), and such records leave that signal's counts alone.

Eval-time outputs become records too (:func:`from_eval`), so a baseline and a production window go
through the same code.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Literal, Sequence

Kind = Literal["continuous", "categorical"]

# Openings of a refusal, matched case-insensitively at the start of the output (after blanks).
REFUSAL_OPENINGS = (
    "i can't", "i cannot", "i can not", "i won't", "i will not", "i'm sorry", "i am sorry", "sorry, i",
    "as an ai", "i'm not able to", "i am not able to", "i'm unable to", "i am unable to",
)
_REFUSAL = re.compile(r"^\s*(?:" + "|".join(re.escape(o) for o in REFUSAL_OPENINGS) + ")", re.IGNORECASE)
MISSING = "(missing)"


@dataclass(frozen=True)
class Signal:
    name: str          # "input.chars", "output.label", "input.category"
    kind: Kind
    doc: str

    @property
    def side(self) -> str:
        return self.name.split(".", 1)[0]


BUILTIN = (
    Signal("input.chars", "continuous", "length of the input in characters"),
    Signal("input.words", "continuous", "words in the input (blank-separated)"),
    Signal("output.chars", "continuous", "length of the output in characters, blanks around it aside"),
    Signal("output.label", "categorical", "the label answered (classifications)"),
    Signal("output.confidence", "continuous", "confidence of the answer (classifications)"),
    Signal("output.refusal", "categorical", "whether the output opens as a refusal"),
    Signal("output.version", "categorical", "the model version that answered"),
)
# Shown beside the others, never a verdict: a new version answering is a release, not a drift.
INFORMATIONAL = ("output.version",)


def signals_for(fields: Sequence[str] = ()) -> list[Signal]:
    """The built-in signals plus one categorical input signal per named field (``category`` always)."""
    names = ["category"] + [f for f in fields if f != "category"]
    extra = [Signal(f"input.{name}", "categorical", f"the input's {name!r} field") for name in names]
    return list(BUILTIN[:2]) + extra + list(BUILTIN[2:])


def is_refusal(text: str) -> bool:
    return bool(_REFUSAL.match(text or ""))


_GETTERS: dict[str, Callable[[dict], Any]] = {
    "input.chars": lambda r: len(r.get("input") or ""),
    "input.words": lambda r: len((r.get("input") or "").split()),
    # blanks around the text aside: a served generation opens with the space its first token carries,
    # where the eval's answer is the bare label (SQL: CHAR_LENGTH(TRIM(output)))
    "output.chars": lambda r: len((r.get("output") or "").strip(" ")),
    "output.label": lambda r: r.get("label"),
    "output.confidence": lambda r: r.get("confidence"),
    "output.refusal": lambda r: "yes" if is_refusal(r.get("output") or "") else "no",
    "output.version": lambda r: r.get("version"),
}


def _field_getter(field: str) -> Callable[[dict], Any]:
    def get(record: dict) -> Any:
        found = record.get(field)
        return MISSING if found is None else str(found)
    return get


def getter(signal: Signal) -> Callable[[dict], Any]:
    """The function giving the signal's value on a record: looked up once, called per record, so that
    profiling a million records pays no dispatch on the signal's name."""
    return _GETTERS.get(signal.name) or _field_getter(signal.name.split(".", 1)[1])


def _per_text(fn: Callable[[str], Any], texts: list) -> list:
    """``fn`` over ``texts``, once per distinct text when they repeat (a classifier's few answers)."""
    try:
        distinct = set(texts)
    except TypeError:            # something unhashable where a text was expected: one by one
        distinct = None
    if distinct is not None and len(distinct) * 4 <= len(texts):
        known = {text: fn(text) for text in distinct}
        return [known[text] for text in texts]
    return [fn(text) for text in texts]


def _refusal_answer(text: str) -> str:
    return "yes" if _REFUSAL.match(text) else "no"


def _outputs(records: Sequence[dict]) -> list:
    return [r.get("output") or "" for r in records]


# The same getters over many records at once, one pass per signal and no call per record: what a profile
# counts a chunk of log with (tests/unit/test_signals.py holds each equal to its getter).
_COLUMNS: dict[str, Callable[[Sequence[dict]], list]] = {
    "input.chars": lambda rs: [len(r.get("input") or "") for r in rs],
    "input.words": lambda rs: [len((r.get("input") or "").split()) for r in rs],
    "output.chars": lambda rs: _per_text(lambda text: len(text.strip(" ")), _outputs(rs)),
    "output.label": lambda rs: [r.get("label") for r in rs],
    "output.confidence": lambda rs: [r.get("confidence") for r in rs],
    "output.refusal": lambda rs: _per_text(_refusal_answer, _outputs(rs)),
    "output.version": lambda rs: [r.get("version") for r in rs],
}


def _field_column(field: str) -> Callable[[Sequence[dict]], list]:
    def column(records: Sequence[dict]) -> list:
        found = [r.get(field) for r in records]
        return [v if v.__class__ is str else MISSING if v is None else str(v) for v in found]
    return column


def column(signal: Signal) -> Callable[[Sequence[dict]], list]:
    """The function giving the signal's values on a list of records (None where a record does not carry
    it), as :func:`getter` gives them one by one."""
    return _COLUMNS.get(signal.name) or _field_column(signal.name.split(".", 1)[1])


def value(record: dict, signal: Signal) -> Any:
    """The signal's value on one record, or None when the record does not carry it."""
    return getter(signal)(record)


def values(records: Iterable[dict], signal: Signal) -> list:
    """The signal over many records, records without it left out."""
    get = getter(signal)
    return [v for v in (get(r) for r in records) if v is not None]


def from_eval(example: dict, output: dict, version: str | None = None) -> dict:
    """An eval-time answer as a production-log record: the example's input and fields, the output line's
    output, label and confidence. The baseline of drift is made of these."""
    record = {key: val for key, val in example.items() if key not in ("expected", "labels")}
    record.update(input=example.get("input", ""), output=output.get("output") or "",
                  label=output.get("label"), confidence=output.get("confidence"), version=version)
    return record
