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


def _line(**fields):
    base = dict(model="chat", version="v1.0.0", stage="prod", input="hello", output="pos", latency_ms=3,
                status=200, ts="2026-11-30T06:00:00.000Z")
    return prodlog.encode(prodlog.make_record(**{**base, **fields}))


def test_reading_folders_globs_and_gzip_in_name_order(tmp_path):
    import gzip

    (tmp_path / "logs" / "old").mkdir(parents=True)
    (tmp_path / "logs" / "chat-2026-11-30.jsonl").write_bytes(_line(input="b"))
    with gzip.open(tmp_path / "logs" / "old" / "chat-2026-11-29.jsonl.gz", "wb") as out:
        out.write(_line(input="a"))
    (tmp_path / "logs" / "notes.txt").write_text("not a log")
    assert [r["input"] for r in prodlog.read([tmp_path / "logs"])] == ["b", "a"]
    assert [r["input"] for r in prodlog.read([str(tmp_path / "logs" / "**" / "*.gz")])] == ["a"]


@pytest.mark.parametrize("given, problem", [
    ("missing", "no such file or folder"), ("empty-dir", "holds no .jsonl"), ("*.nothing", "no file matches"),
])
def test_a_log_path_that_names_nothing_is_an_error_naming_it(tmp_path, given, problem):
    from gitmodel.errors import InvalidLog

    (tmp_path / "empty-dir").mkdir()
    with pytest.raises(InvalidLog, match=problem) as info:
        list(prodlog.read([str(tmp_path / given)]))
    assert given in str(info.value)


def test_malformed_lines_are_counted_and_the_first_named_by_file_and_line(tmp_path):
    from gitmodel.errors import InvalidLog

    log = tmp_path / "chat.jsonl"
    log.write_bytes(_line() + b"{not json\n" + b"[1, 2]\n"
                    + b'{"model": "chat", "ts": "2026-11-30T06:00:00Z", "input": "x", "output": "y", '
                      b'"confidence": NaN}\n' + b'{"ts": "soon", "model": "chat", "input": "x", "output": "y"}\n'
                    + _line(input="last")[:-9])
    stats = prodlog.ReadStats()
    records = list(prodlog.read([log], stats=stats))
    assert [r["input"] for r in records] == ["hello"]
    assert stats.malformed == 5 and stats.lines == 6
    assert stats.bad[:2] == [f"{log}:2: not JSON", f"{log}:3: a JSON list, not an object"]
    assert any(":4: confidence nan" in b for b in stats.bad) and any(":5: ts 'soon'" in b for b in stats.bad)
    assert stats.bad[-1].endswith(":6: cut off (no end of line)")
    with pytest.raises(InvalidLog, match=r"chat.jsonl:2: not JSON"):
        list(prodlog.read([log], strict=True))


def test_a_line_is_parsed_as_json_loads_would(tmp_path):
    log = tmp_path / "chat.jsonl"
    log.write_bytes(_line()[:-1] + b" trailing\n" + b"  " + _line(input="blank first") + _line()[:-1] + b"  \n")
    stats = prodlog.ReadStats()
    assert [r["input"] for r in prodlog.read([log], stats=stats)] == ["blank first", "hello"]
    assert stats.bad == [f"{log}:1: not JSON"]


def test_a_record_from_the_future_is_malformed(tmp_path):
    from datetime import datetime, timezone

    log = tmp_path / "chat.jsonl"
    log.write_bytes(_line() + _line(ts="2026-11-30T12:00:00.000Z"))
    now = datetime(2026, 11, 30, 11, 0, tzinfo=timezone.utc)
    stats = prodlog.ReadStats()
    assert len(list(prodlog.read([log], stats=stats, now=now))) == 1
    assert stats.bad == [f"{log}:2: ts 2026-11-30T12:00:00.000Z is in the future (the clock says "
                         "2026-11-30T11:00:00.000Z)"]
    assert len(list(prodlog.read([log], now=datetime(2026, 11, 30, 11, 56, tzinfo=timezone.utc)))) == 2


def test_a_gzip_cut_off_gives_what_it_held_then_says_so(tmp_path):
    import gzip

    from gitmodel.errors import InvalidLog

    whole = gzip.compress(b"".join(_line(input=str(i)) for i in range(2000)))
    cut = tmp_path / "chat-2026-11-30.jsonl.gz"
    cut.write_bytes(whole[: len(whole) // 2])
    stats = prodlog.ReadStats()
    records = list(prodlog.read([cut], stats=stats))
    assert 0 < len(records) < 2000 and stats.malformed >= 1
    assert "gzip stream is cut off" in stats.bad[-1]
    with pytest.raises(InvalidLog, match="cut off"):
        list(prodlog.read([cut], strict=True))


def test_model_and_window_filters_skip_and_count(tmp_path):
    from datetime import datetime, timezone

    log = tmp_path / "all.jsonl"
    log.write_bytes(_line(ts="2026-11-01T00:00:00Z") + _line(ts="2026-11-08T00:00:00Z")
                    + _line(model="other", ts="2026-11-02T00:00:00Z"))
    stats = prodlog.ReadStats()
    since, until = datetime(2026, 11, 1, tzinfo=timezone.utc), datetime(2026, 11, 8, tzinfo=timezone.utc)
    records = list(prodlog.read([log], model="chat", since=since, until=until, stats=stats))
    assert [r["ts"] for r in records] == ["2026-11-01T00:00:00Z"] and stats.skipped == 2


def test_an_openai_request_and_response_line_is_read_as_a_record(tmp_path):
    line = {"request": {"model": "chat", "messages": [{"role": "system", "content": "be brief"},
                                                       {"role": "user", "content": "Where is my refund?"}]},
            "response": {"id": "cmpl-1", "created": 1764484802, "model": "chat",
                         "choices": [{"message": {"role": "assistant", "content": "billing"}}],
                         "usage": {"completion_tokens": 1}}, "latency_ms": 12}
    log = tmp_path / "openai.jsonl"
    log.write_text(json.dumps(line) + "\n")
    [record] = prodlog.read([log])
    assert (record["input"], record["output"], record["model"], record["output_tokens"]) == \
        ("Where is my refund?", "billing", "chat", 1)
    assert record["ts"] == "2025-11-30T06:40:02.000Z"
