"""The fast reading of production logs (chunks, the canonical fast path, byte ranges across processes)
gives exactly what reading line by line gives: the same records, the same counts, the same malformed lines
named by the same file:line, and the same profile.

The reference is the line-by-line reader this project had before the chunked one, kept here as it was,
and a profile counted record by record with the signals' one-record getters."""
from __future__ import annotations

import gzip
import json
import math
import random
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pytest

from gitmodel import drift, logchunks, logpool, prodlog, profiles, profiling, signals
from gitmodel.errors import InvalidLog

NOW = datetime(2026, 11, 30, 12, 0, tzinfo=timezone.utc)


# -- the reference: one line at a time ------------------------------------------------------------------

def _reference_lines(path: Path):
    opener = gzip.open if path.name.endswith(".gz") else open
    with opener(path, "rb") as stream:
        yield from stream


def reference_read(paths, *, model=None, since=None, until=None, strict=False, stats=None, version=None, now=None):
    import zlib

    stats = stats if stats is not None else prodlog.ReadStats()
    latest = (now or datetime.now(timezone.utc)) + prodlog.CLOCK_SKEW
    latest_text = prodlog.timestamp(latest)

    def note(where, problem):
        stats.malformed += 1
        if len(stats.bad) < prodlog.SHOWN_BAD_LINES:
            stats.bad.append(f"{where}: {problem}")

    for path in prodlog.log_files(paths):
        stats.files.append(str(path))
        number = 0
        try:
            for number, raw in enumerate(_reference_lines(path), start=1):
                stats.lines += 1
                if not raw.strip():
                    continue
                try:
                    obj = prodlog.parse_line(raw)
                except (ValueError, UnicodeDecodeError):
                    obj, problem = None, "not JSON" if raw.endswith(b"\n") else "cut off (no end of line)"
                else:
                    obj, problem = prodlog.check_record(obj)
                if obj is not None:
                    ts = str(obj["ts"])
                    later = ts > latest_text if len(ts) == 24 and ts.endswith("Z") else \
                        prodlog.parse_timestamp(ts) > latest
                    if later:
                        obj, problem = None, f"ts {ts} is in the future (the clock says " \
                                             f"{prodlog.timestamp(latest - prodlog.CLOCK_SKEW)})"
                if obj is None:
                    if strict:
                        raise InvalidLog(path, number, problem, hint="fix or remove the line, or drop --strict")
                    note(f"{path}:{number}", problem)
                    continue
                if model is not None and obj["model"] != model:
                    stats.skipped += 1
                    other = str(obj["model"])
                    stats.other_models[other] = stats.other_models.get(other, 0) + 1
                    continue
                if version is not None and obj.get("version") != version:
                    stats.skipped += 1
                    continue
                if since is not None or until is not None:
                    moment = prodlog.parse_timestamp(str(obj["ts"]))
                    if (since is not None and moment < since) or (until is not None and moment >= until):
                        stats.skipped += 1
                        continue
                stats.records += 1
                yield obj
        except (EOFError, zlib.error, gzip.BadGzipFile) as exc:
            problem = f"the gzip stream is cut off or damaged after line {number} ({exc})"
            if strict:
                raise InvalidLog(path, None, problem, hint="x") from None
            note(str(path), problem)


def reference_profile(records: list[dict], binning: profiles.Binning) -> dict:
    """Each signal's counts, n, min and max, counted one record at a time with the getters."""
    out = {}
    for b in binning.bins:
        get = signals.getter(signals.Signal(b.signal, b.kind, ""))
        present = [v for v in (get(r) for r in records) if v is not None]
        if b.kind == "continuous":
            values = np.asarray(present, dtype=float)
            counts = drift.bin_counts(values, np.asarray(b.edges)) if b.edges else np.array([values.size])
            out[b.signal] = {"counts": [int(c) for c in counts], "n": len(present),
                             "min": float(values.min()) if present else None,
                             "max": float(values.max()) if present else None,
                             "sum": math.fsum(values)}
        else:
            index = {cat: i for i, cat in enumerate(b.categories)}
            counts = [0] * (len(index) + 1)
            unseen: dict[str, int] = {}
            for v in map(str, present):
                counts[index.get(v, len(index))] += 1
                if v not in index:
                    unseen[v] = unseen.get(v, 0) + 1
            out[b.signal] = {"counts": counts, "n": len(present), "unseen": unseen}
    return out


def ours_as_reference(profile: profiles.Profile) -> dict:
    out = {}
    for name, c in profile.counts.items():
        entry = {"counts": [int(x) for x in c.counts], "n": c.n}
        if c.bins.kind == "continuous":
            entry.update(min=c.low, max=c.high, sum=c.total)
        else:
            entry["unseen"] = dict(c.unseen)
        out[name] = entry
    return out


# -- a log with every kind of line ------------------------------------------------------------------------

def _record(rng: random.Random, i: int, **over) -> dict:
    label = rng.choice(["positive", "negative", "neutral"])
    record = prodlog.make_record(
        model="chat", version=rng.choice(["v1.0.0", "v1.0.0", "v1.1.0"]), stage="prod",
        input=" ".join(rng.choice(["good", "bad", "late", "pizza", "é", "  ", "\t"]) for _ in range(rng.randint(0, 30))),
        output=rng.choice([f" {label}", label, "I'm sorry, I can't", "  As an AI", "ok"]), label=label,
        confidence=round(rng.uniform(0, 1), 4), latency_ms=3, status=200,
        ts=prodlog.timestamp(datetime(2026, 11, 1, tzinfo=timezone.utc) + timedelta(seconds=rng.randint(0, 28 * 86400),
                                                                                     milliseconds=rng.randint(0, 999))),
        category=rng.choice(["food", "price", "delivery"]))
    if rng.random() < 0.05:      # on a bound of a window below, to the millisecond
        record["ts"] = rng.choice(["2026-11-08T00:00:00.000Z", "2026-11-15T06:30:00.000Z", "2026-11-20T00:00:00.000Z",
                                   "2026-11-08T00:00:00.001Z", "2026-11-19T23:59:59.999Z"])
    record.update(over)
    return record


def _odd_line(rng: random.Random, i: int) -> bytes:
    """A line off the fast path: malformed, foreign, or a record in an unusual shape."""
    good = _record(rng, i)
    odd = [
        lambda: b"{not json\n",
        lambda: b"[1, 2]\n",
        lambda: b"\n",
        lambda: b"   \t \n",
        lambda: b"\xff\xfe garbage\n",
        lambda: json.dumps(good).encode() + b" trailing\n",
        lambda: b"  " + json.dumps(good).encode() + b"\n",                    # leading blanks
        lambda: json.dumps(good).encode() + b"\r\n",                          # CRLF
        lambda: json.dumps(good).encode() + "\u00a0".encode() + b"\n",        # a no-break space after it
        lambda: json.dumps({**good, "confidence": float("nan")}).encode() + b"\n",
        lambda: json.dumps({**good, "confidence": float("inf")}).encode() + b"\n",
        lambda: json.dumps({**good, "confidence": 1}).encode() + b"\n",
        lambda: json.dumps({**good, "confidence": True}).encode() + b"\n",
        lambda: json.dumps({**good, "confidence": "0.5"}).encode() + b"\n",
        lambda: json.dumps({**good, "confidence": None}).encode() + b"\n",
        lambda: json.dumps({k: v for k, v in good.items() if k != "output"}).encode() + b"\n",
        lambda: json.dumps({**good, "input": 12}).encode() + b"\n",
        lambda: json.dumps({**good, "model": "other"}).encode() + b"\n",
        lambda: json.dumps({**good, "model": 7}).encode() + b"\n",
        lambda: json.dumps({**good, "ts": "2026-11-05T10:00:00+02:00"}).encode() + b"\n",
        lambda: json.dumps({**good, "ts": "2026-11-05T10:00:00"}).encode() + b"\n",
        lambda: json.dumps({**good, "ts": "2026-11-05T10:00:00.123456Z"}).encode() + b"\n",
        lambda: json.dumps({**good, "ts": "2026-02-30T10:00:00.000Z"}).encode() + b"\n",
        lambda: json.dumps({**good, "ts": "2026-11-05T24:00:00.000Z"}).encode() + b"\n",
        lambda: json.dumps({**good, "ts": "2026-11-05T10:00:60.000Z"}).encode() + b"\n",
        lambda: json.dumps({**good, "ts": "2026-12-01T00:00:00.000Z"}).encode() + b"\n",    # in the future
        lambda: json.dumps({**good, "ts": "2026-11-30T12:04:59.999Z"}).encode() + b"\n",    # within the skew
        lambda: json.dumps({**good, "ts": "soon"}).encode() + b"\n",
        lambda: json.dumps({**good, "ts": 20261105}).encode() + b"\n",
        lambda: json.dumps({**good, "label": 1}).encode() + b"\n",
        lambda: json.dumps({**good, "label": True}).encode() + b"\n",
        lambda: json.dumps({**good, "label": ["a"]}).encode() + b"\n",
        lambda: json.dumps({**good, "category": None}).encode() + b"\n",
        lambda: json.dumps({**good, "category": 3}).encode() + b"\n",
        lambda: json.dumps({"request": {"model": "chat", "messages": [{"role": "user", "content": "Where is it?"}]},
                            "response": {"id": f"c{i}", "created": 1764400000 + i, "model": "chat",
                                         "choices": [{"message": {"role": "assistant", "content": "positive"}}],
                                         "usage": {"completion_tokens": 1}}}).encode() + b"\n",
        lambda: json.dumps({"request": {"model": "chat", "prompt": "late again"}, "ts": "2026-11-03T01:02:03.004Z",
                            "response": {"choices": [{"text": " negative"}]}, "version": "v1.0.0"}).encode() + b"\n",
        lambda: json.dumps({"request": {"model": "chat"}, "response": {"choices": []}}).encode() + b"\n",
        lambda: b'{"a": 1,\n',                                                   # an object across two lines
    ]
    return rng.choice(odd)()


def write_logs(folder: Path, seed: int = 0, lines: int = 2500) -> list[Path]:
    rng = random.Random(seed)
    folder.mkdir(parents=True, exist_ok=True)
    body = [json.dumps(_record(rng, i), ensure_ascii=rng.random() < 0.5, separators=(",", ":")).encode() + b"\n"
            if rng.random() < 0.8 else _odd_line(rng, i) for i in range(lines)]
    big = folder / "chat-2026-11-01.jsonl"
    big.write_bytes(b"".join(body) + json.dumps(_record(rng, -1)).encode())     # a last line without its newline
    cut = folder / "chat-2026-11-02.jsonl"
    cut.write_bytes(b"".join(body[:300]) + b'{"ts": "2026-11-02T')               # cut off
    with gzip.open(folder / "chat-2026-11-03.jsonl.gz", "wb") as out:
        out.write(b"".join(body[300:900]))
    whole = gzip.compress(b"".join(body[900:]))
    (folder / "chat-2026-11-04.jsonl.gz").write_bytes(whole[: len(whole) * 2 // 3])   # a gzip cut off
    return [big, cut, folder / "chat-2026-11-03.jsonl.gz", folder / "chat-2026-11-04.jsonl.gz"]


@pytest.fixture(scope="module")
def logs(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("logs")
    write_logs(folder)
    return folder


@pytest.fixture
def small_chunks(monkeypatch):
    """Chunks of a few lines, and pieces of a few chunks handed to a pool of processes."""
    monkeypatch.setattr(logchunks, "BLOCK", 2048)
    monkeypatch.setattr(logpool, "IN_PROCESS_BYTES", 0)
    monkeypatch.setattr(logpool, "MIN_PIECE_BYTES", 4096)


WINDOWS = [
    {},
    {"model": "chat"},
    {"model": "chat", "version": "v1.1.0"},
    {"model": "chat", "since": datetime(2026, 11, 8, tzinfo=timezone.utc),
     "until": datetime(2026, 11, 15, 6, 30, tzinfo=timezone.utc)},
    # a bound between two milliseconds, and one with an offset: compared as times, not as text
    {"model": "chat", "since": datetime(2026, 11, 8, 0, 0, 0, 500, tzinfo=timezone.utc),
     "until": datetime(2026, 11, 20, 2, 0, tzinfo=timezone(timedelta(hours=2)))},
]


@pytest.mark.parametrize("window", WINDOWS, ids=["all", "model", "version", "window", "sub-ms-window"])
def test_chunked_reading_gives_the_records_and_counts_of_line_by_line(logs, small_chunks, window):
    ours_stats, ref_stats = prodlog.ReadStats(), prodlog.ReadStats()
    ours = list(prodlog.read([logs], stats=ours_stats, now=NOW, **window))
    ref = list(reference_read([logs], stats=ref_stats, now=NOW, **window))
    assert ours == ref
    assert ours_stats.to_dict() == ref_stats.to_dict()
    assert ref_stats.malformed > 50 and ref_stats.records > 100 and len(ref_stats.bad) == prodlog.SHOWN_BAD_LINES


@pytest.mark.parametrize("window", WINDOWS, ids=["all", "model", "version", "window", "sub-ms-window"])
@pytest.mark.parametrize("workers", [1, 3])
def test_profiling_in_pieces_across_processes_gives_the_profile_of_one_pass(logs, small_chunks, window, workers):
    binning = profiling.binning_from(reference_read([logs], model="chat", now=NOW), signals.signals_for(["region"]))
    ref_stats = prodlog.ReadStats()
    ref = reference_profile(list(reference_read([logs], stats=ref_stats, now=NOW, **window)), binning)
    stats = prodlog.ReadStats()
    pieces, pooled = logpool.plan(prodlog.log_files([logs]), workers)
    assert pooled == (workers > 1) and len(pieces) > (8 if workers > 1 else 3)
    profile = logpool.profile_logs([logs], binning, stats=stats, now=NOW, workers=workers, **window)
    ours = ours_as_reference(profile)
    for name in ref:
        if "sum" in ref[name]:
            assert ours[name].pop("sum") == pytest.approx(ref[name].pop("sum"), rel=1e-12)
    assert ours == ref
    assert stats.to_dict() == ref_stats.to_dict() and profile.n == ref_stats.records


def test_line_numbers_of_a_byte_range_follow_the_ranges_before_it(tmp_path, small_chunks):
    log = tmp_path / "chat.jsonl"
    rng = random.Random(3)
    lines = [json.dumps(_record(rng, i)).encode() + b"\n" for i in range(400)]
    for at in (17, 150, 151, 390):
        lines[at] = b"{broken\n"
    log.write_bytes(b"".join(lines))
    stats = prodlog.ReadStats()
    binning = profiling.binning_from(prodlog.read([log], now=NOW), signals.signals_for([]))
    pieces, _ = logpool.plan([log], 2)
    assert len(pieces) > 4 and all(p.path == log for p in pieces)
    logpool.profile_logs([log], binning, stats=stats, now=NOW, workers=2)
    assert stats.bad == [f"{log}:{n + 1}: not JSON" for n in (17, 150, 151, 390)] and stats.lines == 400


@pytest.mark.parametrize("workers", [1, 2])
def test_strict_stops_at_the_first_malformed_line_in_file_order(tmp_path, small_chunks, workers):
    log = tmp_path / "chat.jsonl"
    rng = random.Random(4)
    lines = [json.dumps(_record(rng, i)).encode() + b"\n" for i in range(400)]
    lines[250], lines[330] = b"{broken\n", b"[]\n"
    log.write_bytes(b"".join(lines))
    binning = profiling.binning_from(prodlog.read([log], now=NOW), signals.signals_for([]))
    with pytest.raises(InvalidLog, match=r"chat.jsonl:251: not JSON"):
        logpool.profile_logs([log], binning, strict=True, now=NOW, workers=workers)
    with pytest.raises(InvalidLog, match=r"chat.jsonl:251: not JSON"):
        list(prodlog.read([log], strict=True, now=NOW))


@pytest.mark.parametrize("workers", [1, 2])
def test_a_gzip_cut_off_gives_its_lines_then_says_so_and_strict_refuses_it(tmp_path, small_chunks, workers):
    rng = random.Random(5)
    whole = gzip.compress(b"".join(json.dumps(_record(rng, i)).encode() + b"\n" for i in range(3000)))
    cut = tmp_path / "chat-2026-11-04.jsonl.gz"
    cut.write_bytes(whole[: len(whole) // 2])
    plain = tmp_path / "chat-2026-11-05.jsonl"
    plain.write_bytes(b"".join(json.dumps(_record(rng, i)).encode() + b"\n" for i in range(300)))
    binning = profiling.binning_from(prodlog.read([plain], now=NOW), signals.signals_for([]))
    stats, ref_stats = prodlog.ReadStats(), prodlog.ReadStats()
    profile = logpool.profile_logs([tmp_path], binning, stats=stats, now=NOW, workers=workers)
    ref = list(reference_read([tmp_path], stats=ref_stats, now=NOW))
    assert stats.to_dict() == ref_stats.to_dict() and profile.n == len(ref) > 300
    assert stats.bad == [f"{cut}: " + ref_stats.bad[0].split(": ", 1)[1]] and "gzip stream is cut off" in stats.bad[0]
    with pytest.raises(InvalidLog, match="gzip stream is cut off") as info:
        logpool.profile_logs([tmp_path], binning, strict=True, now=NOW, workers=workers)
    assert "truncated" in info.value.hint


def test_small_logs_are_read_in_this_process(logs):
    pieces, pooled = logpool.plan(prodlog.log_files([logs]), 8)
    assert not pooled and [p.path for p in pieces] == prodlog.log_files([logs])
    assert all((p.start, p.end) == (0, None) for p in pieces)
