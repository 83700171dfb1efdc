"""Profiling production logs with every core: the logs cut into pieces, each profiled by a process, the
profiles added up.

Profiles add up (:meth:`profiles.Profile.add`), so a log can be profiled in pieces anywhere and summed.
A piece is a gzip file whole (a gzip stream cannot be entered midway), or a plain file, or a byte range of
a big one cut at newlines. Worker processes each profile pieces against the baseline's bins
(:mod:`logchunks` reads them); the parent adds the profiles and the read counts up in piece order, so that
the malformed lines shown are the first of the logs in file order, numbered as in their file (a range's
first line comes after the lines of the ranges before it). With ``strict`` the first malformed line in
file order is the error.

Logs under :data:`IN_PROCESS_BYTES` are read in this process: starting a pool costs more than it saves.
"""
from __future__ import annotations

import math
import multiprocessing
import os
import signal
import sys
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Sequence

from gitmodel import logchunks, prodlog, profiles, profiling
from gitmodel.runners.base import available_cores      # every core this process may run on

IN_PROCESS_BYTES = 24 << 20      # about 60,000 lines: under this, one process reads it all
PIECES_PER_WORKER = 4            # smaller pieces even out the workers on a machine that is not idle
MIN_PIECE_BYTES = 8 << 20
GZIP_WEIGHT = 8                  # a gzip byte holds about this many bytes of lines to read


@dataclass(frozen=True)
class Piece:
    path: Path
    start: int = 0
    end: int | None = None       # None: to the end of the file


def _work(path: Path) -> int:
    size = path.stat().st_size
    return size * GZIP_WEIGHT if path.name.endswith(".gz") else size


def _cuts(path: Path, size: int, count: int) -> list[int]:
    """Up to ``count - 1`` offsets into ``path``, each the start of a line, spread evenly."""
    cuts = []
    with open(path, "rb") as stream:
        for k in range(1, count):
            stream.seek(size * k // count)
            stream.readline()
            at = stream.tell()
            if at < size and (not cuts or at > cuts[-1]):
                cuts.append(at)
    return cuts


def plan(files: Sequence[Path], workers: int) -> tuple[list[Piece], bool]:
    """(the pieces, in file order; whether they are worth a pool of processes)."""
    works = [_work(f) for f in files]
    total = sum(works)
    if workers <= 1 or total < IN_PROCESS_BYTES:
        return [Piece(f) for f in files], False
    target = max(total / (workers * PIECES_PER_WORKER), MIN_PIECE_BYTES)
    pieces = []
    for path, work in zip(files, works):
        count = math.ceil(work / target)
        if path.name.endswith(".gz") or count < 2:
            pieces.append(Piece(path))
            continue
        bounds = [0, *_cuts(path, work, count), None]
        pieces += [Piece(path, a, b) for a, b in zip(bounds, bounds[1:])]
    return pieces, len(pieces) > 1


def _profile_piece(job: tuple) -> tuple[profiles.Profile, logchunks.Tally]:
    piece, binning, model, label, rules = job
    tally = logchunks.Tally()
    profiler = profiling.Profiler(binning, model, label)
    for batch in logchunks.scan(piece.path, rules, tally, piece.start, piece.end):
        profiler.add_batch(batch)
    return profiler.result(), tally


def _leave_interrupts_to_the_parent() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _context():
    # fork: the workers start with this process's modules already imported; elsewhere the platform's own
    return multiprocessing.get_context("fork" if sys.platform.startswith("linux") else None)


def profile_logs(paths: Sequence[str | os.PathLike], binning: profiles.Binning, *, model: str | None = None,
                 label: str | None = None, since: datetime | None = None, until: datetime | None = None,
                 version: str | None = None, strict: bool = False, stats: prodlog.ReadStats | None = None,
                 now: datetime | None = None, workers: int | None = None) -> profiles.Profile:
    """The profile of the logs' records (what :func:`prodlog.read` keeps), read by up to ``workers``
    processes (default: every core); ``stats`` gets what the read went through, as a read in one
    process would count it."""
    stats = stats if stats is not None else prodlog.ReadStats()
    rules = logchunks.Rules.make(model=model, version=version, since=since, until=until, now=now, strict=strict)
    files = prodlog.log_files(paths)
    workers = available_cores() if workers is None else workers
    pieces, pooled = plan(files, workers)
    jobs = [(piece, binning, model, label, rules) for piece in pieces]
    total = profiles.Profile.empty(binning, model, label)
    if pooled:
        # leaving the block terminates the workers: at once on an error, --strict's or Ctrl-C's
        with _context().Pool(min(workers, len(jobs)), initializer=_leave_interrupts_to_the_parent) as pool:
            _add_up(pieces, pool.imap(_profile_piece, jobs), total, stats)
    else:
        _add_up(pieces, map(_profile_piece, jobs), total, stats)
    return total


def _add_up(pieces: Sequence[Piece], results, total: profiles.Profile, stats: prodlog.ReadStats) -> None:
    """Each piece's profile and tally, in file order; a piece's line numbers follow the lines before it."""
    before: dict[Path, int] = {}
    for piece, (profile, tally) in zip(pieces, results):
        first_line = before.get(piece.path, 0)
        if piece.path not in before:
            stats.files.append(str(piece.path))
        before[piece.path] = first_line + tally.lines
        stats.add(str(piece.path), tally, first_line)
        total.add(profile)
        if tally.stop is not None:
            number, problem = tally.stop
            raise prodlog.strict_error(piece.path, None if number is None else first_line + number, problem)
