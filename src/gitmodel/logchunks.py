"""Reading the production log a chunk at a time: fast, and line for line what :func:`prodlog.read` says.

A plain file is read in blocks of whole lines (or a byte range of it, cut at newlines, which is how one
big file is shared between processes); a gzip file line by line, gathered into chunks. A chunk is decoded
once and each line parsed in place by the JSON scanner. A line in the shape the server writes (an object
whose ``ts`` is canonical text, with string ``input`` and ``output``, a model, and a finite float
confidence or none) is checked with a few comparisons, its time against the window as text (exact: the
canonical form sorts as time). Any other line goes through the general path, which is the line-by-line
reader's own (:func:`prodlog.check_record`): the fast path only ever accepts what that path would accept,
so a chunk reads exactly as the lines one by one would.

Counts and malformed lines go into a :class:`Tally` per piece (a file, or a byte range of one), with line
numbers within the piece: the line numbers of a file are its pieces' tallies added in order.
"""
from __future__ import annotations

import gzip
import json
import re
import zlib
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterator

from gitmodel import prodlog

BLOCK = 1 << 16              # bytes of whole lines per chunk: their records stay in the processor's cache
_scan_once = json.JSONDecoder().scan_once
# The canonical ts (prodlog.timestamp), fields in range: such a text parses iff its date exists.
_CANONICAL_TS = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T(?:[01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9]\.[0-9]{3}Z")
_days: dict[str, bool] = {}


def _day_exists(day: str) -> bool:
    """Whether ``YYYY-MM-DD`` is a date, remembered (a log holds few days)."""
    if len(_days) > 100_000:
        _days.clear()
    try:
        prodlog.parse_timestamp(day + "T00:00:00.000Z")
        _days[day] = True
    except ValueError:
        _days[day] = False
    return _days[day]


def _canonical(ts: str) -> bool:
    """True when ``ts`` is the canonical text of a time :func:`prodlog.parse_timestamp` reads."""
    return _CANONICAL_TS.fullmatch(ts) is not None and (_days.get(ts[:10]) or _day_exists(ts[:10]))


def _as_text(moment: datetime | None) -> str | None:
    """The canonical text of a window bound, when comparing texts is exact (whole milliseconds, UTC,
    four-digit years); None when times must be parsed to be compared."""
    if moment is None or moment.tzinfo is None:
        return None
    utc = moment.astimezone(timezone.utc)
    if utc.microsecond % 1000 or not 1000 <= utc.year <= 9999:
        return None
    return prodlog.timestamp(utc)


@dataclass(frozen=True)
class Rules:
    """Which records a read keeps: model, version, the window ``[since, until)``, nothing later than
    ``latest``; ``strict`` stops at the first line that is not a record."""

    model: str | None = None
    version: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    latest: datetime | None = None
    strict: bool = False

    @classmethod
    def make(cls, *, model=None, version=None, since=None, until=None, now: datetime | None = None,
             strict: bool = False) -> "Rules":
        latest = (now or datetime.now(timezone.utc)) + prodlog.CLOCK_SKEW
        return cls(model, version, since, until, latest, strict)

    @property
    def latest_text(self) -> str:
        return prodlog.timestamp(self.latest)

    @property
    def texts(self) -> tuple[bool, str | None, str | None]:
        """(the window compares as text, since's text, until's text)."""
        since, until = _as_text(self.since), _as_text(self.until)
        exact = (self.since is None or since is not None) and (self.until is None or until is not None)
        return exact, since, until


@dataclass
class Tally:
    """What one piece of a log held. ``bad``: the first few malformed lines as (line number within the
    piece, or None for the whole file; why). ``stop``: with strict rules, the first of them, where reading
    stopped."""

    lines: int = 0
    records: int = 0
    skipped: int = 0
    other_models: dict[str, int] = field(default_factory=dict)
    malformed: int = 0
    bad: list[tuple[int | None, str]] = field(default_factory=list)
    stop: tuple[int | None, str] | None = None

    def note(self, number: int | None, problem: str, strict: bool) -> None:
        self.malformed += 1
        if len(self.bad) < prodlog.SHOWN_BAD_LINES:
            self.bad.append((number, problem))
        if strict and self.stop is None:
            self.stop = (number, problem)

    def skip_model(self, model) -> None:
        self.skipped += 1
        other = str(model)
        self.other_models[other] = self.other_models.get(other, 0) + 1


def _future(ts: str, rules: Rules) -> str:
    return f"ts {ts} is in the future (the clock says {prodlog.timestamp(rules.latest - prodlog.CLOCK_SKEW)})"


def _general(raw: bytes, rules: Rules, latest_text: str) -> tuple[dict | None, str | None]:
    """One line the line-by-line way: (the record, None) or (None, why it is not one)."""
    try:
        obj = prodlog.parse_line(raw)
    except (ValueError, UnicodeDecodeError):
        return None, "not JSON" if raw.endswith(b"\n") else "cut off (no end of line)"
    obj, problem = prodlog.check_record(obj)
    if obj is not None:
        ts = str(obj["ts"])
        # our own format compares as text; any other is parsed
        later = ts > latest_text if len(ts) == 24 and ts.endswith("Z") else prodlog.parse_timestamp(ts) > rules.latest
        if later:
            return None, _future(ts, rules)
    return obj, problem


def _kept(obj: dict, rules: Rules, tally: Tally) -> bool:
    """The filters on a record, the general way (the time parsed)."""
    if rules.model is not None and obj["model"] != rules.model:
        tally.skip_model(obj["model"])
        return False
    if rules.version is not None and obj.get("version") != rules.version:
        tally.skipped += 1
        return False
    if rules.since is not None or rules.until is not None:
        moment = prodlog.parse_timestamp(str(obj["ts"]))
        if (rules.since is not None and moment < rules.since) or (rules.until is not None and moment >= rules.until):
            tally.skipped += 1
            return False
    return True


def _split_lines(data: bytes) -> list[bytes]:
    lines = data.split(b"\n")
    last = lines.pop()
    out = [line + b"\n" for line in lines]
    if last:
        out.append(last)
    return out


def _chunk_by_lines(data: bytes, rules: Rules, tally: Tally) -> list[dict]:
    """A chunk that does not decode as a whole: each line the general way."""
    kept = []
    latest_text = rules.latest_text
    for raw in _split_lines(data):
        tally.lines += 1
        if not raw.strip():
            continue
        obj, problem = _general(raw, rules, latest_text)
        if obj is None:
            tally.note(tally.lines, problem, rules.strict)
            if rules.strict:
                break
        elif _kept(obj, rules, tally):
            kept.append(obj)
    tally.records += len(kept)
    return kept


def chunk(data: bytes, rules: Rules, tally: Tally) -> list[dict]:
    """The records of ``data``: whole lines (the last may lack its newline at the end of a file)."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return _chunk_by_lines(data, rules, tally)
    kept: list[dict] = []
    keep = kept.append
    scan, find, canonical, days, day_exists = _scan_once, text.find, _CANONICAL_TS.fullmatch, _days, _day_exists
    latest_text = rules.latest_text
    model, version, strict = rules.model, rules.version, rules.strict
    exact, since_text, until_text = rules.texts
    windowed = rules.since is not None or rules.until is not None
    number = tally.lines
    size, pos = len(text), 0
    while pos < size:
        stop = find("\n", pos)
        if stop < 0:
            stop = size              # the last line, without its newline
        after = stop + 1
        number += 1
        try:
            obj, end = scan(text, pos)
        except (StopIteration, ValueError):
            obj = None
        else:
            if end != stop and text[end:stop] != "\r":
                obj = None
        if obj.__class__ is dict:
            get = obj.get
            ts, m, conf = get("ts"), get("model"), get("confidence")
            if ts.__class__ is str and m is not None and get("input").__class__ is str and \
                    get("output").__class__ is str and (conf is None or (conf.__class__ is float and conf - conf == 0.0)) \
                    and canonical(ts) is not None and (days.get(ts[:10]) or day_exists(ts[:10])):
                if ts > latest_text:
                    tally.note(number, _future(ts, rules), strict)
                    if strict:
                        break
                elif model is not None and m != model:
                    tally.skip_model(m)
                elif version is not None and get("version") != version:
                    tally.skipped += 1
                elif windowed and not exact:
                    if _kept(obj, rules, tally):
                        keep(obj)
                elif (since_text is not None and ts < since_text) or (until_text is not None and ts >= until_text):
                    tally.skipped += 1
                else:
                    keep(obj)
                pos = after
                continue
        raw = text[pos:after].encode("utf-8")
        pos = after
        if not raw.strip():
            continue
        obj, problem = _general(raw, rules, latest_text)
        if obj is None:
            tally.note(number, problem, strict)
            if strict:
                break
        elif _kept(obj, rules, tally):
            keep(obj)
    tally.lines = number
    tally.records += len(kept)
    return kept


def _plain(path: Path, rules: Rules, tally: Tally, start: int, end: int | None) -> Iterator[list[dict]]:
    with open(path, "rb") as stream:
        stream.seek(start)
        left = end - start if end is not None else None
        carry = b""
        while True:
            block = stream.read(BLOCK if left is None else min(BLOCK, left))
            if left is not None:
                left -= len(block)
            if not block:
                if carry:
                    yield chunk(carry, rules, tally)
                return
            cut = block.rfind(b"\n")
            if cut < 0:
                carry += block
                continue
            data, carry = carry + block[:cut + 1], block[cut + 1:]
            yield chunk(data, rules, tally)
            if tally.stop is not None:
                return


def _gzip(path: Path, rules: Rules, tally: Tally) -> Iterator[list[dict]]:
    # line by line from the stream, so that a file cut off mid-stream gives every line it held
    lines: list[bytes] = []
    held = 0
    try:
        with gzip.open(path, "rb") as stream:
            for raw in stream:
                lines.append(raw)
                held += len(raw)
                if held >= BLOCK:
                    yield chunk(b"".join(lines), rules, tally)
                    lines, held = [], 0
                    if tally.stop is not None:
                        return
    except (EOFError, zlib.error, gzip.BadGzipFile) as exc:
        if lines:
            yield chunk(b"".join(lines), rules, tally)
            if tally.stop is not None:
                return
        tally.note(None, f"the gzip stream is cut off or damaged after line {tally.lines} ({exc})", rules.strict)
        return
    if lines:
        yield chunk(b"".join(lines), rules, tally)


def scan(path: Path, rules: Rules, tally: Tally, start: int = 0, end: int | None = None) -> Iterator[list[dict]]:
    """The records of one file (or of its bytes ``[start, end)``, cut at newlines), a chunk at a time.
    With strict rules it stops at the first malformed line (``tally.stop``)."""
    if path.name.endswith(".gz"):
        if start or end is not None:
            raise ValueError("a gzip file is read whole")
        return _gzip(path, rules, tally)
    return _plain(path, rules, tally, start, end)
