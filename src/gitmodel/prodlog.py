"""The production log: what a served model saw and said, one request per line.

A line is one JSON object, written whole and flushed as it is written::

    {"schema_version": 1, "id": "...", "ts": "2026-11-30T06:40:02.123Z", "model": "chat",
     "version": "v1.2.0", "stage": "prod", "input": "...", "output": "...", "label": "pos",
     "confidence": 0.93, "output_tokens": 1, "latency_ms": 41.2, "status": 200, "user": "9f2c..."}

``input`` is the user's content before any prompt or chat template; ``label``, ``confidence``,
``output_tokens`` and ``user`` (the hash used for sticky routing) appear when they are known. Extra fields
are kept. Files are ``<dir>/<model>-YYYY-MM-DD.jsonl`` by the UTC day of ``ts``, so a day is one file,
rotation is a rename, and ``gzip`` of a past day is allowed: readers take both.

This module is the one home of the format: the server writes through :class:`LogWriter`, the monitors
read through :func:`read`, which also takes a team's own logs of OpenAI request/response pairs.
"""
from __future__ import annotations

import glob
import json
import math
import os
import threading
import uuid
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Iterator, Sequence

from gitmodel.errors import InvalidLog

SCHEMA_VERSION = 1
SUFFIXES = (".jsonl", ".jsonl.gz")
SHOWN_BAD_LINES = 5          # malformed lines named by file:line; the rest are counted
CLOCK_SKEW = timedelta(minutes=5)   # a ts later than now by more than this is not a record of the past
REQUIRED = ("schema_version", "id", "ts", "model", "version", "stage", "input", "output", "latency_ms", "status")
OPTIONAL = ("label", "confidence", "output_tokens", "user")


def file_name(model: str, day: date) -> str:
    return f"{model}-{day.isoformat()}.jsonl"


def timestamp(moment: datetime | None = None) -> str:
    """ISO 8601 UTC with milliseconds and a ``Z``: sorts as text, parses with ``fromisoformat``."""
    moment = (moment or datetime.now(timezone.utc)).astimezone(timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def parse_timestamp(text: str) -> datetime:
    """A ``ts`` as an aware UTC datetime (``Z`` or an offset; no offset is read as UTC). ValueError if not."""
    moment = datetime.fromisoformat(text[:-1] + "+00:00" if text.endswith("Z") else text)
    if moment.tzinfo is timezone.utc:      # the common case, as written: no conversion to pay per line
        return moment
    return moment.replace(tzinfo=timezone.utc) if moment.tzinfo is None else moment.astimezone(timezone.utc)


def make_record(*, model: str, version: str, stage: str, input: str, output: str, latency_ms: float,
                status: int, id: str | None = None, ts: str | None = None, label: str | None = None,
                confidence: float | None = None, output_tokens: int | None = None, user: str | None = None,
                **extra: Any) -> dict:
    """One log line's object, required fields first; optional ones only when known."""
    record: dict[str, Any] = {
        "schema_version": SCHEMA_VERSION, "id": id or uuid.uuid4().hex, "ts": ts or timestamp(),
        "model": model, "version": version, "stage": stage, "input": input, "output": output,
    }
    for key, value in (("label", label), ("confidence", confidence), ("output_tokens", output_tokens)):
        if value is not None:
            record[key] = value
    record["latency_ms"] = round(float(latency_ms), 3)
    record["status"] = int(status)
    if user is not None:
        record["user"] = user
    record.update(extra)
    return record


def encode(record: dict) -> bytes:
    """The line's bytes: compact JSON, non-ASCII kept, no NaN (a NaN is not JSON), one trailing newline."""
    for key in ("confidence", "latency_ms"):
        value = record.get(key)
        if isinstance(value, float) and not math.isfinite(value):
            raise ValueError(f"production log: {key} is {value!r}, which JSON cannot hold")
    return (json.dumps(record, ensure_ascii=False, separators=(",", ":"), allow_nan=False) + "\n").encode("utf-8")


class LogWriter:
    """Appends records to ``<directory>/<model>-<UTC day>.jsonl``, one ``write`` per line.

    Each line goes out in a single ``os.write`` on a descriptor opened with ``O_APPEND``: whole lines,
    never interleaved, even with several server processes appending to one file, and on disk as soon as
    the call returns (no buffer to lose on a crash). Safe to call from several threads."""

    def __init__(self, directory: str | os.PathLike, model: str):
        self.directory = Path(directory)
        self.model = model
        self._lock = threading.Lock()
        self._day: date | None = None
        self._fd: int | None = None

    def path_for(self, day: date) -> Path:
        return self.directory / file_name(self.model, day)

    def write(self, record: dict) -> Path:
        data = encode(record)
        day = parse_timestamp(record["ts"]).date()
        with self._lock:
            if day != self._day or self._fd is None:
                self._open(day)
            os.write(self._fd, data)
            return self.path_for(day)

    def _open(self, day: date) -> None:
        self._close()
        self.directory.mkdir(parents=True, exist_ok=True)
        self._fd = os.open(self.path_for(day), os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        self._day = day

    def _close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def close(self) -> None:
        with self._lock:
            self._close()

    def __enter__(self) -> "LogWriter":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


# -- reading -----------------------------------------------------------------------------------------


@dataclass
class ReadStats:
    """What a read went through: files, lines, records kept, and the lines that were not records."""
    files: list[str] = field(default_factory=list)
    lines: int = 0
    records: int = 0
    skipped: int = 0                                  # records of another model or version, or outside the window
    other_models: dict[str, int] = field(default_factory=dict)   # records skipped for their model, by model
    malformed: int = 0
    bad: list[str] = field(default_factory=list)      # the first few, as "file:line: why"

    def note_bad(self, where: str, problem: str) -> None:
        self.malformed += 1
        if len(self.bad) < SHOWN_BAD_LINES:
            self.bad.append(f"{where}: {problem}")

    def add(self, path: str, tally, first_line: int = 0) -> None:
        """A piece's tally (:class:`logchunks.Tally`) of ``path``, its line numbers after ``first_line``."""
        self.lines += tally.lines
        self.records += tally.records
        self.skipped += tally.skipped
        for other, n in tally.other_models.items():
            self.other_models[other] = self.other_models.get(other, 0) + n
        self.malformed += tally.malformed
        for number, problem in tally.bad:
            if len(self.bad) < SHOWN_BAD_LINES:
                self.bad.append(f"{path}: {problem}" if number is None else f"{path}:{first_line + number}: {problem}")

    def to_dict(self) -> dict:
        return {"files": len(self.files), "lines": self.lines, "records": self.records,
                "skipped": self.skipped, "other_models": dict(self.other_models), "malformed": self.malformed,
                "bad": list(self.bad)}


def log_files(paths: Sequence[str | os.PathLike]) -> list[Path]:
    """The log files a user named: files, folders (every ``*.jsonl`` / ``*.jsonl.gz`` under them) and
    globs, in name order (day files sort by day). A path that names nothing is an error."""
    found: list[Path] = []
    for given in paths:
        text = str(given)
        if any(ch in text for ch in "*?["):
            matches = sorted(Path(m) for m in glob.glob(text, recursive=True) if Path(m).is_file())
            if not matches:
                raise InvalidLog(text, None, "no file matches this pattern", hint="check the --log pattern")
            found += matches
        elif Path(text).is_dir():
            matches = sorted(p for p in Path(text).rglob("*") if p.is_file() and p.name.endswith(SUFFIXES))
            if not matches:
                raise InvalidLog(text, None, "this folder holds no .jsonl or .jsonl.gz file",
                                 hint="point --log at the folder the server writes to")
            found += matches
        elif Path(text).is_file():
            found.append(Path(text))
        else:
            raise InvalidLog(text, None, "no such file or folder", hint="check the --log path")
    unique: dict[Path, None] = dict.fromkeys(found)
    return list(unique)


def from_openai(obj: dict) -> dict | None:
    """A line holding an OpenAI request and its response (``{"request": {...}, "response": {...}}``,
    chat/completions or completions) as a record; None when it is not one."""
    request, response = obj.get("request"), obj.get("response")
    if not isinstance(request, dict) or not isinstance(response, dict):
        return None
    messages = request.get("messages")
    if isinstance(messages, list):
        users = [m.get("content") for m in messages if isinstance(m, dict) and m.get("role") == "user"]
        text_in = users[-1] if users and isinstance(users[-1], str) else None
    else:
        text_in = request.get("prompt") if isinstance(request.get("prompt"), str) else None
    choices = response.get("choices")
    choice = choices[0] if isinstance(choices, list) and choices and isinstance(choices[0], dict) else {}
    message = choice.get("message") if isinstance(choice.get("message"), dict) else {}
    text_out = message.get("content") if "message" in choice else choice.get("text")
    if not isinstance(text_in, str) or not isinstance(text_out, str):
        return None
    created = response.get("created")
    ts = obj.get("ts") or (timestamp(datetime.fromtimestamp(created, timezone.utc))
                           if isinstance(created, (int, float)) else None)
    usage = response.get("usage") if isinstance(response.get("usage"), dict) else {}
    record = {"schema_version": SCHEMA_VERSION, "id": response.get("id") or obj.get("id"), "ts": ts,
              "model": obj.get("model") or response.get("model") or request.get("model"),
              "version": obj.get("version") or response.get("model"), "stage": obj.get("stage"),
              "input": text_in, "output": text_out, "latency_ms": obj.get("latency_ms"),
              "status": obj.get("status", 200)}
    if isinstance(usage.get("completion_tokens"), int):
        record["output_tokens"] = usage["completion_tokens"]
    return record


def check_record(obj: Any) -> tuple[dict | None, str | None]:
    """(the record, None) or (None, why it is not one). Our lines and OpenAI request/response lines."""
    if not isinstance(obj, dict):
        return None, f"a JSON {type(obj).__name__}, not an object"
    if "request" in obj and "response" in obj and "input" not in obj:
        converted = from_openai(obj)
        if converted is None:
            return None, "an OpenAI request/response line without a user message or a choice"
        obj = converted
    get = obj.get
    ts, text_in, text_out = get("ts"), get("input"), get("output")
    if ts is None or text_in is None or text_out is None or get("model") is None:
        missing = [key for key in ("ts", "model", "input", "output") if obj.get(key) is None]
        return None, "missing " + ", ".join(missing)
    if text_in.__class__ is not str or text_out.__class__ is not str:
        if not isinstance(text_in, str) or not isinstance(text_out, str):
            return None, "input and output must be strings"
    try:
        parse_timestamp(str(ts))
    except ValueError:
        return None, f"ts {ts!r} is not an ISO 8601 time"
    confidence = get("confidence")
    if confidence is not None and (confidence.__class__ is not float or not math.isfinite(confidence)) and \
            (not isinstance(confidence, (int, float)) or isinstance(confidence, bool) or not math.isfinite(confidence)):
        return None, f"confidence {confidence!r} is not a finite number"
    return obj, None


_raw_decode = json.JSONDecoder().raw_decode


def parse_line(raw: bytes) -> Any:
    """``json.loads`` of one line, minus its per-call encoding detection: a third of the time of a
    line on a million-line log. Anything after the object but blanks is refused, as json.loads does."""
    text = raw.decode("utf-8")
    try:
        obj, end = _raw_decode(text)
    except ValueError:
        return json.loads(text)          # leading blanks are allowed; any other error is raised here
    if end != len(text) and text[end:].strip():
        raise ValueError("extra data after the JSON value")
    return obj


def strict_error(path: str | os.PathLike, number: int | None, problem: str) -> InvalidLog:
    """The error of ``--strict`` on a line that is not a record (``number`` None: the whole file)."""
    if number is None:
        return InvalidLog(path, None, problem, hint="the file may still be being written or was truncated")
    return InvalidLog(path, number, problem, hint="fix or remove the line, or drop --strict")


def read_batches(paths: Sequence[str | os.PathLike], *, model: str | None = None, since: datetime | None = None,
                 until: datetime | None = None, strict: bool = False, stats: ReadStats | None = None,
                 version: str | None = None, now: datetime | None = None) -> Iterator[list[dict]]:
    """:func:`read`, a list of records at a time (a chunk of a few MB of log): what a profile counts."""
    from gitmodel import logchunks

    stats = stats if stats is not None else ReadStats()
    rules = logchunks.Rules.make(model=model, version=version, since=since, until=until, now=now, strict=strict)
    for path in log_files(paths):
        stats.files.append(str(path))
        tally = logchunks.Tally()
        for batch in logchunks.scan(path, rules, tally):
            if batch:
                yield batch
        stats.add(str(path), tally)
        if tally.stop is not None:
            raise strict_error(path, *tally.stop) from None


def read(paths: Sequence[str | os.PathLike], *, model: str | None = None, since: datetime | None = None,
         until: datetime | None = None, strict: bool = False, stats: ReadStats | None = None,
         version: str | None = None, now: datetime | None = None) -> Iterator[dict]:
    """Every record of the logs, streamed (memory stays flat however long the logs), in file order.

    Records of another model (or ``version``) and outside ``[since, until)`` are skipped and counted. A
    line that is not a record is counted and the first few named by ``file:line``; with ``strict`` it is
    an error. A record timed after ``now`` (default: the clock) by more than :data:`CLOCK_SKEW` is not a
    record of the past: malformed too. A gzip file cut off mid-stream gives what it held, then counts as
    one malformed line (an error with ``strict``)."""
    for batch in read_batches(paths, model=model, since=since, until=until, strict=strict, stats=stats,
                              version=version, now=now):
        yield from batch
