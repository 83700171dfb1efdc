"""Counting records into profiles: the bins a baseline fixes (:func:`binning_from`) and the counts of a
window over them (:class:`Profiler`), a chunk of records at a time. The profile itself, its JSON form and
how profiles add up are :mod:`profiles`."""
from __future__ import annotations

from array import array
from collections import Counter
from itertools import islice
from typing import Iterable, Sequence

import numpy as np

from gitmodel import drift, profiles, signals as signals_mod

FLUSH_EVERY = 512          # records held before their signals are taken, together
FLUSH_VALUES = 65536       # records whose continuous values are held before numpy counts them


def _pick(fn, a, b):
    return b if a is None else a if b is None else fn(a, b)


def binning_from(records: Iterable[dict], signal_list: Sequence[signals_mod.Signal],
                 n_bins: int = profiles.DEFAULT_BINS) -> profiles.Binning:
    """The bins of a baseline: quantile edges (deduplicated) or the categories it holds."""
    columns = [signals_mod.column(s) for s in signal_list]
    numbers = {s.name: array("d") for s in signal_list if s.kind == "continuous"}
    seen: dict[str, set] = {s.name: set() for s in signal_list if s.kind == "categorical"}
    stream = iter(records)
    while chunk := list(islice(stream, FLUSH_EVERY)):
        for sig, column in zip(signal_list, columns):
            present = [v for v in column(chunk) if v is not None]
            if sig.kind == "continuous":
                numbers[sig.name].extend(float(v) for v in present)
            else:
                seen[sig.name].update(v if v.__class__ is str else str(v) for v in present)
    out = []
    for sig in signal_list:
        if sig.kind == "continuous":
            values = numbers[sig.name]
            edges = tuple(float(x) for x in drift.bin_edges(np.frombuffer(values, dtype=float), n_bins)) \
                if len(values) else ()
            out.append(profiles.Bins(sig.name, "continuous", edges=edges))
        else:
            out.append(profiles.Bins(sig.name, "categorical", categories=tuple(sorted(seen[sig.name]))))
    return profiles.Binning(tuple(out))


def _tally(values: list) -> Counter:
    """Counts of the values but None, each as its text. Counted as they are when they are all texts (a
    text equals no other kind of value, so nothing merges); else turned into text first, so that 1 and
    True, equal in a Counter, stay apart as "1" and "True"."""
    try:
        tally = Counter(values)
    except TypeError:            # an unhashable value (a list, an object)
        tally = None
    if tally is not None:
        tally.pop(None, None)
        if all(key.__class__ is str for key in tally):
            return tally
    return Counter([v if v.__class__ is str else str(v) for v in values if v is not None])


class Profiler:
    """Counts records into a profile as they stream by: memory stays flat however many there are.

    Records are taken a small chunk at a time (a few hundred: they stay in the processor's cache), each
    signal over the whole chunk (:func:`signals.column`); the values are kept, not the records, and
    counted with numpy every :data:`FLUSH_VALUES` of them, categories tallied as they come."""

    def __init__(self, binning: profiles.Binning, model: str | None = None, baseline: str | None = None):
        self.profile = profiles.Profile.empty(binning, model, baseline)
        self._columns = [(b, signals_mod.column(signals_mod.Signal(b.signal, b.kind, "")))  # type: ignore[arg-type]
                         for b in binning.bins]
        self._edges = {b.signal: np.asarray(b.edges) for b in binning.bins if b.edges}
        self._index = {b.signal: {cat: i for i, cat in enumerate(b.categories)}
                       for b in binning.bins if b.kind == "categorical"}
        self._numbers: dict[str, list] = {b.signal: [] for b in binning.bins if b.kind == "continuous"}
        self._tallies: dict[str, Counter] = {b.signal: Counter() for b in binning.bins if b.kind == "categorical"}
        self._held = 0
        self._pending: list[dict] = []

    def add(self, record: dict) -> None:
        self._pending.append(record)
        if len(self._pending) >= FLUSH_EVERY:
            self._take(self._pending)
            self._pending = []

    def add_batch(self, records: Sequence[dict]) -> None:
        """Count a chunk of records (as :func:`prodlog.read_batches` yields them)."""
        if self._pending:
            self._take(self._pending)
            self._pending = []
        if records:
            self._take(records)

    def add_all(self, records: Iterable[dict]) -> profiles.Profile:
        for record in records:
            self.add(record)
        return self.result()

    def _take(self, records: Sequence[dict]) -> None:
        p = self.profile
        p.n += len(records)
        keys = [t if t.__class__ is str and len(t) == 24 and t[-1] == "Z" else profiles.ts_key(t)
                for t in [r.get("ts") for r in records] if t is not None]
        if keys:
            p.first = _pick(min, p.first, min(keys))
            p.last = _pick(max, p.last, max(keys))
        for bins, column in self._columns:
            values = column(records)
            if bins.kind == "continuous":
                self._numbers[bins.signal] += [v for v in values if v is not None]
            else:
                self._tallies[bins.signal].update(_tally(values))
        self._held += len(records)
        if self._held >= FLUSH_VALUES:
            self._count_numbers()

    def _count_numbers(self) -> None:
        self._held = 0
        for name, held in self._numbers.items():
            if not held:
                continue
            values = np.asarray(held, dtype=float)
            held.clear()
            c = self.profile.counts[name]
            edges = self._edges.get(name)
            if edges is not None:
                c.counts += drift.bin_counts(values, edges).astype(np.int64)
            else:
                c.counts[0] += values.size
            c.n += int(values.size)
            c.total += float(values.sum())
            c.low = _pick(min, c.low, float(values.min()))
            c.high = _pick(max, c.high, float(values.max()))

    def _count_categories(self) -> None:
        for name, tally in self._tallies.items():
            c = self.profile.counts[name]
            index = self._index[name]
            for v, k in tally.items():
                c.counts[index.get(v, len(index))] += k
                c.n += k
                if v not in index:
                    c.unseen[v] = c.unseen.get(v, 0) + k
            tally.clear()

    def result(self) -> profiles.Profile:
        if self._pending:
            self._take(self._pending)
            self._pending = []
        self._count_numbers()
        self._count_categories()
        return self.profile
