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
