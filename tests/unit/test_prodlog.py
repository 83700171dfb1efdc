"""The production log's writer: the format of a line, one file per UTC day, whole lines under
concurrent writers (threads and processes)."""
from __future__ import annotations

import json
import math
import multiprocessing
import threading

import pytest

from gitmodel import prodlog


def test_a_record_has_the_required_fields_first_and_optional_ones_only_when_known():
    record = prodlog.make_record(model="chat", version="v1.2.0", stage="prod", input="hi", output="pos",
                                 latency_ms=41.23456, status=200, ts="2026-11-30T06:40:02.123Z", label="pos")
    assert list(record)[:8] == ["schema_version", "id", "ts", "model", "version", "stage", "input", "output"]
    assert record["label"] == "pos" and "confidence" not in record and "user" not in record
    assert record["latency_ms"] == 41.235 and record["schema_version"] == 1
    assert set(prodlog.REQUIRED) <= set(record)


def test_timestamps_are_utc_with_a_z_and_read_back():
    from datetime import datetime, timedelta, timezone

    moment = datetime(2026, 11, 30, 8, 40, 2, 123456, tzinfo=timezone(timedelta(hours=2)))
    text = prodlog.timestamp(moment)
    assert text == "2026-11-30T06:40:02.123Z"
    assert prodlog.parse_timestamp(text) == moment.replace(microsecond=123000)
    assert prodlog.parse_timestamp("2026-11-30T06:40:02").tzinfo is not None
    with pytest.raises(ValueError):
        prodlog.parse_timestamp("yesterday")


def test_a_line_is_one_json_object_and_nan_is_refused():
    record = prodlog.make_record(model="m", version="v1.0.0", stage="prod", input="é", output="x",
                                 latency_ms=1, status=200)
    line = prodlog.encode(record)
    assert line.endswith(b"\n") and line.count(b"\n") == 1 and "é".encode() in line
    assert json.loads(line) == record
    with pytest.raises(ValueError, match="confidence"):
        prodlog.encode({**record, "confidence": math.nan})


def test_records_go_to_the_file_of_their_utc_day(tmp_path):
    with prodlog.LogWriter(tmp_path / "logs", "chat") as writer:
        for ts in ("2026-11-29T23:59:59.999Z", "2026-11-30T00:00:00.000Z", "2026-11-30T01:00:00+02:00"):
            writer.write(prodlog.make_record(model="chat", version="v1", stage="prod", input=ts, output="",
                                             latency_ms=1, status=200, ts=ts))
    days = {p.name: [json.loads(line)["input"] for line in p.read_text().splitlines()]
            for p in (tmp_path / "logs").iterdir()}
    assert days == {"chat-2026-11-29.jsonl": ["2026-11-29T23:59:59.999Z", "2026-11-30T01:00:00+02:00"],
                    "chat-2026-11-30.jsonl": ["2026-11-30T00:00:00.000Z"]}


def _append(directory, worker, n):
    with prodlog.LogWriter(directory, "chat") as writer:
        for i in range(n):
            writer.write(prodlog.make_record(model="chat", version="v1", stage="prod", input=f"{worker}-{i}" * 300,
                                             output="y" * 500, latency_ms=1, status=200,
                                             ts="2026-11-30T00:00:00.000Z"))


def test_concurrent_writers_leave_whole_lines(tmp_path):
    threads = [threading.Thread(target=_append, args=(tmp_path, f"t{k}", 200)) for k in range(4)]
    processes = [multiprocessing.get_context("spawn").Process(target=_append, args=(tmp_path, f"p{k}", 200))
                 for k in range(2)]
    for worker in threads + processes:
        worker.start()
    for worker in threads + processes:
        worker.join()
    lines = (tmp_path / "chat-2026-11-30.jsonl").read_text().splitlines()
    assert len(lines) == 1200
    inputs = [json.loads(line)["input"] for line in lines]   # every line parses whole
    assert len(set(inputs)) == 1200
