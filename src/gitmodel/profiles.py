"""Profiles: a window of records counted per signal over the bins of a baseline.

The baseline fixes the bins once (:func:`profiling.binning_from`): for a continuous signal the distinct
``drift.bins`` quantiles of its baseline values (see :func:`drift.bin_edges`), plus an open bin on each
side; for a categorical one, one bin per category the baseline holds plus one ``(unseen)`` bin for the
others (their names are kept beside, to be shown). A profile is then counts over those bins, with n,
the time range and a sum / min / max per continuous signal. Every part adds up: the profile of a week
is the sum of its days' profiles, and shards profiled on different machines add up to the profile of the
whole log, so a monitor never has to read a month again to extend it by a day.

The JSON form (``to_dict``, written by ``drift --save-profile``, read by ``--profile``)::

    {"schema_version": 1, "kind": "git-model profile", "model": "chat", "baseline": "chat#prod (v1.2.0)",
     "bins_id": "3f2a...", "n": 1200, "from": "2026-11-01T00:00:03.120Z", "to": "...",
     "signals": {"input.chars": {"kind": "continuous", "edges": [12, 20, ...], "counts": [0, 130, ...],
                                  "n": 1200, "sum": 40211, "min": 3, "max": 512},
                 "output.label": {"kind": "categorical", "categories": ["negative", "positive"],
                                  "counts": [611, 580, 9], "n": 1200, "unseen": {"neutral": 9}}}}

``bins_id`` names the bins (a hash of every signal's edges or categories): two profiles add up, or
compare, only when it is the same.
"""
from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from gitmodel import prodlog, signals as signals_mod
from gitmodel.errors import InvalidProfile

PROFILE_VERSION = 1
KIND = "git-model profile"
UNSEEN = "(unseen)"
DEFAULT_BINS = 10


@dataclass(frozen=True)
class Bins:
    """One signal's bins, fixed by the baseline."""

    signal: str
    kind: str
    edges: tuple[float, ...] = ()        # continuous: () when the baseline never carries the signal
    categories: tuple[str, ...] = ()     # categorical, sorted; the last bin is UNSEEN

    @property
    def size(self) -> int:
        if self.kind == "categorical":
            return len(self.categories) + 1
        return max(len(self.edges) - 1, 1) + 2 if self.edges else 1

    def names(self) -> list[str]:
        """A readable name per bin, in count order."""
        if self.kind == "categorical":
            return [*self.categories, UNSEEN]
        if not self.edges:
            return ["all"]
        e = [f"{x:g}" for x in self.edges]
        if len(e) == 1:
            return [f"< {e[0]}", f"= {e[0]}", f"> {e[0]}"]
        middle = [f"[{a}, {b})" for a, b in zip(e[:-2], e[1:-1])] + [f"[{e[-2]}, {e[-1]}]"]
        return [f"< {e[0]}", *middle, f"> {e[-1]}"]

    def to_dict(self) -> dict:
        if self.kind == "categorical":
            return {"kind": self.kind, "categories": list(self.categories)}
        return {"kind": self.kind, "edges": list(self.edges)}


@dataclass(frozen=True)
class Binning:
    """The bins of every signal: what a baseline fixes, and what two profiles must share."""

    bins: tuple[Bins, ...]

    @property
    def id(self) -> str:
        canon = json.dumps([[b.signal, b.to_dict()] for b in self.bins], sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canon.encode()).hexdigest()[:16]

    def of(self, signal: str) -> Bins:
        return next(b for b in self.bins if b.signal == signal)

    def signals(self) -> list[signals_mod.Signal]:
        return [signals_mod.Signal(b.signal, b.kind, "") for b in self.bins]  # type: ignore[arg-type]


@dataclass
class Counts:
    """One signal's counts over its bins, and what else adds up."""

    bins: Bins
    counts: np.ndarray
    n: int = 0
    total: float = 0.0               # continuous: sum of the values (mean = total / n)
    low: float | None = None
    high: float | None = None
    unseen: dict[str, int] = field(default_factory=dict)   # categorical: values outside the baseline's

    @property
    def mean(self) -> float | None:
        return self.total / self.n if self.n and self.bins.kind == "continuous" else None

    def shares(self) -> dict[str, float]:
        return {name: float(c) / self.n for name, c in zip(self.bins.names(), self.counts) if c} if self.n else {}

    def summary(self) -> dict:
        if self.bins.kind == "continuous":
            mean = self.mean
            return {"n": self.n, "mean": None if mean is None else round(mean, 4), "min": self.low, "max": self.high}
        return {"n": self.n, "shares": {k: round(v, 4) for k, v in self.shares().items()},
                "unseen": dict(self.unseen)}

    def add(self, other: "Counts") -> None:
        self.counts = self.counts + other.counts
        self.n += other.n
        self.total += other.total
        self.low = _pick(min, self.low, other.low)
        self.high = _pick(max, self.high, other.high)
        for key, c in other.unseen.items():
            self.unseen[key] = self.unseen.get(key, 0) + c

    def to_dict(self) -> dict:
        entry = self.bins.to_dict()
        entry["counts"] = [int(c) for c in self.counts]
        entry["n"] = self.n
        if self.bins.kind == "continuous":
            entry.update(sum=_number(self.total), min=_number(self.low), max=_number(self.high))
        else:
            entry["unseen"] = dict(sorted(self.unseen.items()))
        return entry


def _pick(fn, a, b):
    return b if a is None else a if b is None else fn(a, b)


def _number(x):
    if x is None:
        return None
    return int(x) if float(x).is_integer() and abs(x) < 2 ** 53 else float(x)


def ts_key(ts: Any) -> str:
    """A ``ts`` in our canonical text, so that time ranges compare as text."""
    text = str(ts)
    if len(text) == 24 and text.endswith("Z"):
        return text
    return prodlog.timestamp(prodlog.parse_timestamp(text))


@dataclass
class Profile:
    """A window's counts per signal over a baseline's bins; profiles of one baseline add up."""

    binning: Binning
    counts: dict[str, Counts]
    model: str | None = None
    baseline: str | None = None
    n: int = 0
    first: str | None = None
    last: str | None = None

    @classmethod
    def empty(cls, binning: Binning, model: str | None = None, baseline: str | None = None) -> "Profile":
        return cls(binning, {b.signal: Counts(b, np.zeros(b.size, dtype=np.int64)) for b in binning.bins},
                   model, baseline)

    def add(self, other: "Profile") -> "Profile":
        check_compatible(self, other)
        for name, c in other.counts.items():
            self.counts[name].add(c)
        self.n += other.n
        self.first = _pick(min, self.first, other.first)
        self.last = _pick(max, self.last, other.last)
        return self

    def to_dict(self) -> dict:
        return {"schema_version": PROFILE_VERSION, "kind": KIND, "model": self.model, "baseline": self.baseline,
                "bins_id": self.binning.id, "n": self.n, "from": self.first, "to": self.last,
                "signals": {name: c.to_dict() for name, c in self.counts.items()}}


def check_compatible(a: Profile, b: Profile, a_name: str = "the baseline", b_name: str = "the profile") -> None:
    """Refuse two profiles that do not count over the same bins (or not for the same model), saying why."""
    if a.model and b.model and a.model != b.model:
        raise InvalidProfile(b_name, f"is a profile of model '{b.model}', not '{a.model}'")
    if a.binning.id == b.binning.id:
        return
    why = []
    names_a, names_b = [x.signal for x in a.binning.bins], [x.signal for x in b.binning.bins]
    if names_a != names_b:
        why.append(f"signals differ ({', '.join(sorted(set(names_a) ^ set(names_b))) or 'order'})")
    else:
        for x, y in zip(a.binning.bins, b.binning.bins):
            if x != y:
                what = "categories" if x.kind == "categorical" else "bin edges"
                why.append(f"{x.signal}: {what} {list(x.categories or x.edges)} vs {list(y.categories or y.edges)}")
                break
    raise InvalidProfile(b_name, f"counts over other bins than {a_name} (bins_id {b.binning.id} vs {a.binning.id}; "
                         f"{'; '.join(why)}): it was made against another baseline (by {b.baseline or 'unknown'})",
                         hint="profile the logs again against this baseline, or compare with the baseline "
                              "the profile was made against (--baseline)")


# -- JSON ---------------------------------------------------------------------------------------------


def _need(cond: bool, source: str, problem: str) -> None:
    if not cond:
        raise InvalidProfile(source, problem, hint="write profiles with `git model drift --save-profile FILE`")


def _count_list(value: Any, size: int, source: str, where: str) -> np.ndarray:
    _need(isinstance(value, list) and len(value) == size, source, f"{where}.counts must be a list of {size} counts")
    _need(all(isinstance(c, int) and not isinstance(c, bool) and c >= 0 for c in value), source,
          f"{where}.counts must hold whole numbers >= 0")
    return np.asarray(value, dtype=np.int64)


def from_dict(doc: Any, source: str = "profile") -> Profile:
    """A profile read back from its JSON form, every field checked; errors name the file and the field."""
    _need(isinstance(doc, dict), source, "not a JSON object")
    _need(doc.get("kind") == KIND and doc.get("schema_version") == PROFILE_VERSION, source,
          f"not a git-model profile (kind {KIND!r}, schema_version {PROFILE_VERSION})")
    sigs = doc.get("signals")
    _need(isinstance(sigs, dict) and sigs, source, "signals must be a non-empty object")
    bins, counts = [], {}
    for name, entry in sigs.items():
        where = f"signals.{name}"
        _need(isinstance(entry, dict) and entry.get("kind") in ("continuous", "categorical"), source,
              f"{where}.kind must be continuous or categorical")
        if entry["kind"] == "categorical":
            cats = entry.get("categories")
            _need(isinstance(cats, list) and all(isinstance(c, str) for c in cats), source,
                  f"{where}.categories must be a list of strings")
            b = Bins(name, "categorical", categories=tuple(cats))
        else:
            edges = entry.get("edges")
            _need(isinstance(edges, list) and all(isinstance(e, (int, float)) and not isinstance(e, bool)
                                                  and math.isfinite(e) for e in edges), source,
                  f"{where}.edges must be a list of finite numbers")
            _need(all(a < b for a, b in zip(edges, edges[1:])), source, f"{where}.edges must increase")
            b = Bins(name, "continuous", edges=tuple(float(e) for e in edges))
        c = Counts(b, _count_list(entry.get("counts"), b.size, source, where))
        n = entry.get("n")
        _need(isinstance(n, int) and not isinstance(n, bool) and n == int(c.counts.sum()), source,
              f"{where}.n must be the sum of its counts ({int(c.counts.sum())})")
        c.n = n
        if b.kind == "continuous":
            for key in ("sum", "min", "max"):
                v = entry.get(key)
                _need(v is None or (isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)),
                      source, f"{where}.{key} must be a finite number or null")
            c.total, c.low, c.high = float(entry.get("sum") or 0), entry.get("min"), entry.get("max")
        else:
            unseen = entry.get("unseen") or {}
            _need(isinstance(unseen, dict) and all(isinstance(v, int) and v >= 0 for v in unseen.values()), source,
                  f"{where}.unseen must map values to counts")
            c.unseen = dict(unseen)
        bins.append(b)
        counts[name] = c
    n = doc.get("n")
    _need(isinstance(n, int) and not isinstance(n, bool) and n >= 0, source, "n must be a whole number >= 0")
    for key in ("from", "to"):
        v = doc.get(key)
        if v is not None:
            try:
                prodlog.parse_timestamp(str(v))
            except ValueError:
                _need(False, source, f"{key} {v!r} is not an ISO 8601 time")
    binning = Binning(tuple(bins))
    _need(doc.get("bins_id") in (None, binning.id), source,
          f"bins_id {doc.get('bins_id')!r} does not match its bins ({binning.id}): the file was edited")
    return Profile(binning, counts, doc.get("model"), doc.get("baseline"), n, doc.get("from"), doc.get("to"))


def load(path: str | Path) -> Profile:
    from gitmodel import jsonio

    path = Path(path)
    if not path.is_file():
        raise InvalidProfile(path, "no such file", hint="write one with `git model drift --save-profile FILE`")
    try:
        doc = jsonio.loads(path.read_bytes())
    except (ValueError, UnicodeDecodeError) as e:
        raise InvalidProfile(path, f"not valid JSON: {e}") from None
    return from_dict(doc, str(path))


def merge(profiles: Sequence[Profile], names: Sequence[str] | None = None) -> Profile:
    """The sum of profiles of one baseline (refused, saying why, when their bins differ)."""
    if not profiles:
        raise ValueError("merge needs at least one profile")
    names = list(names or [f"profile {i + 1}" for i in range(len(profiles))])
    first = profiles[0]
    total = Profile.empty(first.binning, first.model, first.baseline)
    for profile, name in zip(profiles, names):
        check_compatible(total, profile, names[0], name)
        total.add(profile)
    return total


def dumps(profile: Profile) -> str:
    return json.dumps(profile.to_dict(), indent=1) + "\n"
