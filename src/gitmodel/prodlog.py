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
read through the reader below it.
"""
from __future__ import annotations

import json
import math
import os
import threading
import uuid
from datetime import date, datetime, timezone
from pathlib import Path
from typing import Any

SCHEMA_VERSION = 1
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
