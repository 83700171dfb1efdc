"""``git model drift``: production logs against a baseline, signal by signal, by PSI.

The baseline is, by default, what ``MODEL#prod`` said on its eval sets at its release: the outputs stored
with its metrics and the inputs of the eval sets they were computed on (read by md5 from the DVC cache or
the workspace), turned into records by :func:`signals.from_eval`. Or a production window
(``--baseline-log``). The baseline fixes the bins (:mod:`gitmodel.profiles`); the current window is
counted over them as the logs stream by, or read from saved profiles and added up. Each signal then gets
its PSI and band (``params.yaml`` ``drift:``), the baseline's and the window's summaries, and a flag when
a side has fewer than ``drift.min_samples`` records.

Decide, then act: everything is read and computed before ``--save-profile`` writes its file, and that
file is checked first (never over a file git does not hold).
"""
from __future__ import annotations

import dataclasses

import json
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Iterable, Sequence

from gitmodel import drift as drift_mod
from gitmodel import gitrepo, logpool, params, prodlog, profiles, profiling, project, signals
from gitmodel.errors import GitModelError, InvalidLog, InvalidPath, InvalidProfile

BANDS_ORDER = {"stable": 0, drift_mod.NO_DATA: 0, "watch": 1, "alert": 2}


@dataclass
class Baseline:
    label: str                  # what the baseline is, for a reader: "sentiment#prod (v1.2.0): eval outputs"
    records: list[dict] | None  # the eval-time records (None: a production window, read from logs)
    logs: Sequence[str] = ()

    def stream(self, model: str, strict: bool) -> Iterable[dict]:
        if self.records is not None:
            return iter(self.records)
        return prodlog.read(self.logs, model=model, strict=strict)

    def profile(self, binning: profiles.Binning, model: str, strict: bool, workers: int | None) -> profiles.Profile:
        if self.records is not None:
            return profiling.Profiler(binning, model, self.label).add_all(self.records)
        return logpool.profile_logs(self.logs, binning, model=model, label=self.label, strict=strict, workers=workers)


def _jsonl(path: Path) -> Iterable[dict]:
    from gitmodel import jsonio

    with open(path, "rb") as lines:
        for raw in lines:
            if raw.strip():
                obj = jsonio.loads(raw)
                if isinstance(obj, dict):
                    yield obj


def eval_baseline(root: Path, model: str, ref: str | None = None) -> Baseline:
    """The records of what ``ref`` (default ``MODEL#prod``) answered on its eval sets, from git objects."""
    from gitmodel import behaviour, evaluate, results, revisions

    text = ref or f"{model}#prod"
    rev = revisions.resolve(root, text)
    found = results.results_at(root, rev, model=model, with_outputs=True)
    if not found:
        raise GitModelError(f"{rev.label} holds no eval result of '{model}': the baseline is its eval outputs",
                            hint=f"evaluate and release it (git model eval {model} --evalset E), or give "
                                 "--baseline-log PATH for a production window as the baseline")
    version = str(rev.release.version) if rev.release is not None else None
    records: list[dict] = []
    used = []
    for result in found:
        ref_doc = result.doc.get("evalset") or {}
        outputs = behaviour.parse_outputs(result.outputs, f"{result.path} at {rev.label}")
        if not outputs or not ref_doc.get("md5"):
            continue
        source = evaluate.object_file(root, ref_doc["md5"], ref_doc.get("path", ""), f"eval set {ref_doc.get('name')}")
        for example in _jsonl(source):
            out = outputs.get(example.get("id"))
            if out is not None:
                records.append(signals.from_eval(example, out, version))
        used.append(result.evalset)
    if not records:
        raise GitModelError(f"{rev.label}: the eval results of '{model}' hold no outputs to compare with",
                            hint="re-run its eval, or give --baseline-log PATH")
    label = f"{rev.label}" + (f" ({version})" if version and version not in rev.label else "") + \
        f": outputs on {', '.join(used)}"
    return Baseline(label, records)


@dataclass
class SignalReport:
    signal: str
    kind: str
    informational: bool            # shown, never a verdict (the version that answered)
    watch: float
    alert: float
    psi: drift_mod.SignalDrift
    baseline: dict                 # summaries (profiles.Counts.summary)
    current: dict

    def to_dict(self) -> dict:
        return {"signal": self.signal, "kind": self.kind, "informational": self.informational,
                **self.psi.to_dict(), "watch": self.watch, "alert": self.alert,
                "baseline": self.baseline, "current": self.current}


@dataclass
class DriftResult:
    model: str
    baseline: str
    baseline_n: int
    current: profiles.Profile
    signals: list[SignalReport]
    sources: list[str]                         # the logs or profiles the window came from
    read: dict | None = None                   # prodlog.ReadStats of the window, when logs were read
    window: dict = field(default_factory=dict)
    fail_on: str = "alert"
    saved_profile: str | None = None
    min_samples: int = drift_mod.MIN_SAMPLES

    @property
    def verdict(self) -> str:
        """The worst band of the signals that count (stable, watch or alert)."""
        worst = max((BANDS_ORDER[s.psi.band] for s in self.signals if not s.informational), default=0)
        return ("stable", "watch", "alert")[worst]

    @property
    def fails(self) -> bool:
        return BANDS_ORDER[self.verdict] >= BANDS_ORDER[self.fail_on]

    @property
    def warnings(self) -> list[str]:
        out = []
        few = [s.signal for s in self.signals if s.psi.few_samples and s.psi.band != drift_mod.NO_DATA]
        if few:
            out.append(f"fewer than drift.min_samples ({self.min_samples}) records on a side for "
                       f"{', '.join(few)}: their PSI is noisy")
        if self.read and self.read["malformed"]:
            shown = "; ".join(self.read["bad"])
            out.append(f"{self.read['malformed']} malformed log line(s) left out: {shown}")
        return out

    def to_dict(self) -> dict:
        return {"model": self.model, "verdict": self.verdict, "fail_on": self.fail_on, "fails": self.fails,
                "baseline": {"label": self.baseline, "n": self.baseline_n},
                "current": {"n": self.current.n, "from": self.current.first, "to": self.current.last,
                            "sources": self.sources, "bins_id": self.current.binning.id},
                "window": self.window, "smoothing": drift_mod.SMOOTHING_TEXT,
                "signals": [s.to_dict() for s in self.signals], "read": self.read,
                "warnings": self.warnings, "saved_profile": self.saved_profile}


def check_output_file(root: Path, path: str | Path) -> Path:
    """A file a command may write: new, or one git holds (so nothing is lost). Refused otherwise."""
    target = Path(path)
    if target.is_dir():
        raise InvalidPath(f"{path} is a folder", hint="give a file name")
    if target.exists():
        absolute = target.resolve()
        held = False
        try:
            rel = absolute.relative_to(root.resolve()).as_posix()
            held = bool(gitrepo.run_git(root, "ls-files", "--", rel).strip())
        except ValueError:
            pass
        if not held:
            raise InvalidPath(f"{path} exists and git does not hold it: git-model does not overwrite it",
                              hint="remove it yourself, or write to a new file")
    if not target.parent.is_dir():
        raise InvalidPath(f"{path}: no such folder {target.parent}")
    return target


def _check_window(since: datetime | None, until: datetime | None) -> None:
    if since is not None and until is not None and since >= until:
        raise GitModelError(f"--since {prodlog.timestamp(since)} is not before --until {prodlog.timestamp(until)}",
                            hint="the window is [since, until): give an earlier --since or a later --until")


def _window_profile(binning: profiles.Binning, model: str, label: str, logs: Sequence[str],
                    profile_files: Sequence[str], *, since, until, version, strict,
                    workers: int | None = None) -> tuple[profiles.Profile, dict | None]:
    total = profiles.Profile.empty(binning, model, label)
    reference = profiles.Profile.empty(binning, model, label)
    stats = None
    if logs:
        read_stats = prodlog.ReadStats()
        window = logpool.profile_logs(logs, binning, model=model, label=label, since=since, until=until,
                                      version=version, strict=strict, stats=read_stats, workers=workers)
        stats = read_stats.to_dict()
        if window.n == 0:
            raise InvalidLog(", ".join(map(str, logs)), None, _empty_reason(model, read_stats, version, since, until),
                             hint="point --log at this model's logs, or widen the window")
        total.add(window)
    for name in profile_files:
        loaded = _load_window(name, binning, model, label)
        profiles.check_compatible(reference, loaded, f"the baseline ({label})", name)
        total.add(loaded)
    return total, stats


def _load_window(name: str, binning: profiles.Binning, model: str, label: str) -> profiles.Profile:
    """A saved profile, or the saved result of the ``--sql`` query (CSV or JSON rows)."""
    from gitmodel import profilesql

    path = Path(name)
    if not path.is_file():
        raise InvalidProfile(name, "no such file", hint="write one with `git model drift --save-profile FILE`")
    try:
        doc = json.loads(path.read_text("utf-8"))
    except (ValueError, UnicodeDecodeError):
        doc = None
    if isinstance(doc, dict) and "kind" in doc:
        return profiles.load(path)
    return profilesql.from_rows(profilesql.read_rows(path), binning, model, label, name)


@dataclass
class SqlResult:
    model: str
    baseline: str
    bins_id: str
    query: str

    def to_dict(self) -> dict:
        return {"model": self.model, "baseline": self.baseline, "bins_id": self.bins_id, "query": self.query}


def _baseline_binning(root: Path, model: str, baseline, baseline_logs, strict: bool):
    settings = params.drift_params(root)
    if baseline_logs:
        base = Baseline(f"production window {', '.join(map(str, baseline_logs))}", None, list(baseline_logs))
    else:
        base = eval_baseline(root, model, baseline)
    signal_list = signals.signals_for(settings["fields"])
    return settings, base, profiling.binning_from(base.stream(model, strict), signal_list, settings["bins"])


def sql(model: str, table: str, *, baseline: str | None = None, baseline_logs: Sequence[str] = (),
        version: str | None = None, since: datetime | None = None, until: datetime | None = None,
        start: Path | None = None) -> SqlResult:
    """The one SQL query that profiles ``table``'s window over this baseline's bins (read back with --profile)."""
    from gitmodel import profilesql

    root = project.open_root(start)
    _check_window(since, until)
    _, base, binning = _baseline_binning(root, model, baseline, baseline_logs, False)
    text = profilesql.query(binning, table, model, version=version, since=since, until=until)
    return SqlResult(model, base.label, binning.id, text)


def _empty_reason(model: str, stats: prodlog.ReadStats, version, since, until) -> str:
    parts = [f"no record of model '{model}'"]
    if version:
        parts[0] += f" version {version}"
    if since or until:
        parts[0] += " in the window"
    parts.append(f"{stats.lines} line(s) in {len(stats.files)} file(s)")
    if stats.other_models:
        parts.append("records of other models: " + ", ".join(f"{m} ({n})" for m, n in sorted(stats.other_models.items())))
    if stats.malformed:
        parts.append(f"{stats.malformed} malformed line(s): {'; '.join(stats.bad)}")
    return "; ".join(parts)


def drift(model: str, logs: Sequence[str] = (), *, baseline: str | None = None, baseline_logs: Sequence[str] = (),
          version: str | None = None, since: datetime | None = None, until: datetime | None = None,
          profile_files: Sequence[str] = (), save_profile: str | None = None, strict: bool = False,
          fail_on: str = "alert", start: Path | None = None, record: bool = True,
          workers: int | None = None) -> DriftResult:
    """PSI per signal of the window (logs and / or saved profiles) against the baseline. Logs are read by
    up to ``workers`` processes (default: every core; see :mod:`logpool`)."""
    root = project.open_root(start)
    _check_window(since, until)
    if not logs and not profile_files:
        raise GitModelError("nothing to compare: give --log PATH or --profile FILE")
    if baseline and baseline_logs:
        raise GitModelError("--baseline and --baseline-log name two baselines: give one")
    if fail_on not in ("watch", "alert"):
        raise GitModelError(f"--fail-on {fail_on!r}: watch or alert")
    if workers is not None and workers < 1:
        raise GitModelError(f"--workers {workers}: give 1 or more processes", hint="leave it out to use every core")
    params.drift_params(root)                       # a bad drift: section is refused before anything is read
    target = check_output_file(root, save_profile) if save_profile else None
    settings, base, binning = _baseline_binning(root, model, baseline, baseline_logs, strict)
    base_profile = base.profile(binning, model, strict, workers)
    if base_profile.n == 0:
        raise InvalidLog(", ".join(map(str, baseline_logs)), None, f"the baseline holds no record of model '{model}'",
                         hint="point --baseline-log at this model's logs")
    current, stats = _window_profile(binning, model, base.label, logs, profile_files, since=since, until=until,
                                     version=version, strict=strict, workers=workers)
    reports = []
    for b in binning.bins:
        watch, alert = params.bands_for(settings, b.signal)
        expected, actual = base_profile.counts[b.signal], current.counts[b.signal]
        measured = drift_mod.measure_aligned(expected.counts, actual.counts, watch=watch, alert=alert,
                                             min_samples=settings["min_samples"])
        if _field_not_logged(b.signal, expected, actual):
            # a request carries only what the client sends: a field the eval set has and no logged request
            # has is a field the log does not record, not a shift of its values
            measured = dataclasses.replace(measured, value=None, band=drift_mod.NO_DATA)
        reports.append(SignalReport(b.signal, b.kind, b.signal in signals.INFORMATIONAL, watch, alert, measured,
                                    expected.summary(), actual.summary()))
    window = {"since": prodlog.timestamp(since) if since else None, "until": prodlog.timestamp(until) if until else None,
              "version": version}
    result = DriftResult(model, base.label, base_profile.n, current, reports,
                         [str(x) for x in [*logs, *profile_files]], stats, window, fail_on,
                         min_samples=settings["min_samples"])
    if target is not None:
        from gitmodel.fsutil import atomic_write

        atomic_write(target, profiles.dumps(current))
        result.saved_profile = str(save_profile)
    if record:
        record_run(root, model, "drift", result.verdict)
    return result


def _field_not_logged(signal: str, expected: profiles.Counts, actual: profiles.Counts) -> bool:
    """An input field (``input.category``...) that every record of the window lacks, while the baseline
    has it."""
    if not signal.startswith("input.") or signal in ("input.chars", "input.words"):
        return False
    missing = actual.unseen.get(signals.MISSING, 0) + round(actual.shares().get(signals.MISSING, 0.0) * actual.n)
    return actual.n > 0 and missing == actual.n and any(name != signals.MISSING for name in expected.shares())


# -- when the monitors last ran (status shows it) -------------------------------------------------------

RUNS_FILE = "monitor-runs.json"


def record_run(root: Path, model: str, command: str, verdict: str) -> None:
    """Remember when a monitor last ran on this model here (project state, not versioned)."""
    from gitmodel.fsutil import atomic_write

    path = root / project.STATE_DIR / RUNS_FILE
    runs = last_runs(root)
    runs.setdefault(model, {})[command] = {"at": prodlog.timestamp(), "verdict": verdict}
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(path, json.dumps(runs, indent=1, sort_keys=True) + "\n")
    except OSError:
        pass     # a read-only checkout still gets its verdict


def last_runs(root: Path) -> dict:
    path = Path(root) / project.STATE_DIR / RUNS_FILE
    try:
        data = json.loads(path.read_text("utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}
