"""The profile of a window computed where the logs live: one standard SQL query, and its result read back.

For teams whose production logs are a table (DuckDB, Spark SQL, BigQuery, Trino...) with the log's
columns (``ts``, ``model``, ``version``, ``input``, ``output``, ``label``, ``confidence``, ``category``
and any field of ``drift.fields``), :func:`query` writes one query that counts every signal over the
baseline's bins: ``CASE`` to bin, ``COUNT`` / ``SUM`` / ``MIN`` / ``MAX``, ``GROUP BY``, ``UNION ALL``, and
nothing of any dialect. It returns rows ``(signal, bin, n)``:

- ``('*', <bins_id>, records)``: the total, and the bins the query was written for;
- a continuous signal: ``('input.chars', '#0', count)`` ... one row per non-empty bin (``#i`` as in the
  profile's counts), and ``'sum'``, ``'min'``, ``'max'`` rows;
- a categorical one: ``('output.label', '#i', count)`` for the baseline's categories, and
  ``('output.label', '=value', count)`` for a value the baseline never had.

Saved as CSV (a header ``signal,bin,n``) or JSON (an array, or one object per line), the result is read
back by :func:`from_rows` into the profile :mod:`gitmodel.profiles` would have counted, and compared
with ``drift --profile``. Two approximations of SQL without regular expressions, both exact on text with
single spaces: words are counted as spaces + 1, and a refusal's opening may follow leading spaces only.
"""
from __future__ import annotations

import csv
import io
import json
import math
import re
from datetime import datetime
from pathlib import Path
from typing import Any, Iterable

import numpy as np

from gitmodel import prodlog, signals
from gitmodel.errors import InvalidProfile
from gitmodel.profiles import Binning, Profile

TABLE_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*){0,2}$")
COLUMN_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def _text(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _number(x: float) -> str:
    return repr(int(x)) if float(x).is_integer() else repr(float(x))


def _expression(signal: str) -> tuple[str, str | None]:
    """(the SQL value of a signal on a row, the condition for the row to carry it)."""
    if signal == "input.chars":
        return "CHAR_LENGTH(input)", None
    if signal == "input.words":
        trimmed = "TRIM(input)"
        return (f"CASE WHEN {trimmed} = '' THEN 0 ELSE CHAR_LENGTH({trimmed}) - "
                f"CHAR_LENGTH(REPLACE({trimmed}, ' ', '')) + 1 END"), None
    if signal == "output.chars":
        return "CHAR_LENGTH(TRIM(output))", None
    if signal == "output.label":
        return "label", "label IS NOT NULL"
    if signal == "output.confidence":
        return "confidence", "confidence IS NOT NULL"
    if signal == "output.version":
        return "version", "version IS NOT NULL"
    if signal == "output.refusal":
        opened = "LOWER(TRIM(LEADING ' ' FROM output))"
        likes = " OR ".join(f"{opened} LIKE {_text(o + '%')}" for o in signals.REFUSAL_OPENINGS)
        return f"CASE WHEN {likes} THEN 'yes' ELSE 'no' END", None
    column = signal.split(".", 1)[1]
    if not COLUMN_RE.match(column):
        raise InvalidProfile("--sql", f"drift.fields names {column!r}, which is not a plain column name")
    return f"COALESCE({column}, {_text(signals.MISSING)})", None


def _bin_case(value: str, edges: tuple[float, ...]) -> str:
    """The bin of drift.bin_counts: below the first edge #0, [e(i-1), e(i)) #i, the last edge closed, above it."""
    if not edges:
        return "'#0'"
    k = len(edges)
    middle = max(k - 1, 1)
    whens = [f"WHEN {value} < {_number(edges[0])} THEN '#0'"]
    whens += [f"WHEN {value} < {_number(edges[i])} THEN '#{i}'" for i in range(1, k)]
    whens.append(f"WHEN {value} <= {_number(edges[-1])} THEN '#{middle}'")
    return "CASE " + " ".join(whens) + f" ELSE '#{middle + 1}' END"


def query(binning: Binning, table: str, model: str, *, version: str | None = None, since: datetime | None = None,
          until: datetime | None = None) -> str:
    """The one query that profiles ``table``'s window over ``binning``."""
    if not TABLE_RE.match(table):
        raise InvalidProfile("--sql", f"{table!r} is not a table name (letters, digits, _ and up to two dots)")
    where = [f"model = {_text(model)}"]
    if version:
        where.append(f"version = {_text(version)}")
    if since:
        where.append(f"ts >= {_text(prodlog.timestamp(since))}")
    if until:
        where.append(f"ts < {_text(prodlog.timestamp(until))}")
    base = " AND ".join(where)
    parts = [f"SELECT '*' AS signal, {_text(binning.id)} AS bin, COUNT(*) AS n FROM {table} WHERE {base}"]
    for b in binning.bins:
        value, carries = _expression(b.signal)
        cond = base + (f" AND {carries}" if carries else "")
        name = _text(b.signal)
        if b.kind == "continuous":
            parts.append(f"SELECT {name}, {_bin_case(value, b.edges)}, COUNT(*) FROM {table} WHERE {cond} "
                         f"GROUP BY {_bin_case(value, b.edges)}")
            for fn in ("SUM", "MIN", "MAX"):
                parts.append(f"SELECT {name}, '{fn.lower()}', {fn}({value}) FROM {table} WHERE {cond}")
        else:
            case = "CASE " + " ".join(f"WHEN {value} = {_text(c)} THEN '#{i}'" for i, c in enumerate(b.categories)) \
                + f" ELSE '=' || {value} END" if b.categories else f"'=' || {value}"
            parts.append(f"SELECT {name}, {case}, COUNT(*) FROM {table} WHERE {cond} GROUP BY {case}")
    return "\nUNION ALL\n".join(parts) + "\n"


def read_rows(path: str | Path) -> list[tuple[str, str, Any]]:
    """The (signal, bin, n) rows of a query result saved as CSV or JSON (an array or one object a line)."""
    path = Path(path)
    text = path.read_text("utf-8")
    rows = []
    stripped = text.lstrip()
    if stripped.startswith(("[", "{")):
        try:
            items = json.loads(text) if stripped.startswith("[") else \
                [json.loads(line) for line in text.splitlines() if line.strip()]
        except ValueError as e:
            raise InvalidProfile(path, f"not JSON rows: {e}") from None
        for i, item in enumerate(items, start=1):
            if not isinstance(item, dict) or not {"signal", "bin", "n"} <= set(item):
                raise InvalidProfile(path, f"row {i} is not an object with signal, bin and n")
            rows.append((str(item["signal"]), str(item["bin"]), item["n"]))
        return rows
    reader = csv.DictReader(io.StringIO(text))
    if reader.fieldnames is None or not {"signal", "bin", "n"} <= set(reader.fieldnames):
        raise InvalidProfile(path, "not a profile, nor the rows of `drift --sql` (a CSV header signal,bin,n)")
    for row in reader:
        n = row["n"]
        try:
            value: Any = float(n) if n not in ("", None) else None
        except ValueError:
            raise InvalidProfile(path, f"line {reader.line_num}: n {n!r} is not a number") from None
        rows.append((row["signal"], row["bin"], value))
    return rows


def from_rows(rows: Iterable[tuple[str, str, Any]], binning: Binning, model: str | None, baseline: str | None,
              source: str) -> Profile:
    """The profile a query's rows describe, checked against the bins of this baseline."""
    profile = Profile.empty(binning, model, baseline)
    totals = [r for r in rows if r[0] == "*"]
    if len(totals) != 1:
        raise InvalidProfile(source, "no total row ('*'): not the result of `git model drift --sql`")
    if totals[0][1] != binning.id:
        raise InvalidProfile(source, f"the query was written for other bins (bins_id {totals[0][1]} vs "
                                     f"{binning.id} of this baseline): it was made against another baseline",
                             hint="print the query again with `git model drift MODEL --sql TABLE` against this baseline")
    profile.n = _whole(totals[0][2], source, "*")
    for signal, bin_, n in rows:
        if signal == "*":
            continue
        if signal not in profile.counts:
            raise InvalidProfile(source, f"signal {signal!r} is not one of this baseline's")
        c = profile.counts[signal]
        if bin_ in ("sum", "min", "max"):
            if n is not None and not (isinstance(n, (int, float)) and math.isfinite(float(n))):
                raise InvalidProfile(source, f"{signal} {bin_} {n!r} is not a finite number")
            value = None if n is None else float(n)
            if bin_ == "sum":
                c.total = value or 0.0
            elif bin_ == "min":
                c.low = value
            else:
                c.high = value
            continue
        count = _whole(n, source, f"{signal} {bin_}")
        if bin_.startswith("#") and bin_[1:].isdigit() and int(bin_[1:]) < c.bins.size:
            c.counts[int(bin_[1:])] += count
        elif bin_.startswith("=") and c.bins.kind == "categorical":
            c.counts[-1] += count
            c.unseen[bin_[1:]] = c.unseen.get(bin_[1:], 0) + count
        else:
            raise InvalidProfile(source, f"{signal}: bin {bin_!r} is not one of its {c.bins.size} bins")
        c.n += count
    for c in profile.counts.values():
        c.counts = np.asarray(c.counts, dtype=np.int64)
        if c.bins.kind == "continuous" and c.n:
            c.low, c.high = (_tidy(c.low), _tidy(c.high))
    return profile


def _tidy(x):
    return None if x is None else (int(x) if float(x).is_integer() else x)


def _whole(n: Any, source: str, what: str) -> int:
    try:
        value = float(n)
    except (TypeError, ValueError):
        value = float("nan")
    if not math.isfinite(value) or value < 0 or not value.is_integer():
        raise InvalidProfile(source, f"{what}: count {n!r} is not a whole number >= 0")
    return int(value)
