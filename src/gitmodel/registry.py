"""The registry: releases and stages from git tags, read as GTO reads them, and the one writer of its tags.

Reading takes one ``git for-each-ref``, never a checkout and never a DVC repo
object, so history commands stay fast as releases pile up. Versions are
ordered by SemVer, never by tag time. Every tag git-model writes (a release, a
stage assignment or unassignment) is written by a :class:`Registry` opened
with :func:`writing`, which holds the repository lock and reads the tags under
it, so the rules about what may be written are checked against the state the
write lands on.
"""
from __future__ import annotations

import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from gitmodel import gitobjects, gitrepo, known, refs
from gitmodel.errors import GitModelError
from gitmodel.refs import Version

WORKSPACE = gitrepo.WORKSPACE
PROD = "prod"
CANARY = "canary"


class RegistryConflict(GitModelError):
    """Tags that GTO refuses to read (and so does git-model, so that the two never disagree)."""


class UnknownVersion(GitModelError):
    pass


class StageError(GitModelError):
    pass


@dataclass
class Release:
    model: str
    version: Version
    tag: str
    commit: str
    time: int
    tagger: str = ""
    message: str = ""
    deregistered: bool = False       # GTO's `<model>@vX!` on the release's commit, not older than it
    order: int = 0                   # position in GTO's reading order (tag time, then tag name)


@dataclass
class StageEvent:
    model: str
    stage: str
    counter: int | None
    tag: str
    commit: str
    time: int
    tagger: str = ""
    message: str = ""
    unassign: bool = False           # GTO's `<model>#<stage>!#N`
    version: Version | None = None   # the release at the tagged commit (deregistered or not), as GTO binds it
    order: int = 0

    @property
    def trailers(self) -> dict[str, str]:
        return refs.parse_trailers(self.message)

    @property
    def fraction(self) -> float | None:
        """The share of traffic the assignment gives (a canary's ``Fraction`` trailer)."""
        raw = self.trailers.get("Fraction")
        try:
            return float(raw) if raw is not None else None
        except ValueError:
            return None


@dataclass
class Written:
    """A tag the registry wrote."""

    tag: str
    counter: int | None
    message: str


@dataclass
class Registry:
    """Releases and stages as GTO reads them from the same tags.

    GTO's rules, kept here so that ``git model`` and ``gto show`` never disagree:
    only annotated tags count; events are ordered by tag time (one-second
    resolution), same-second tags by name, never by their ``#N`` counter; a
    stage is held, per version, while that version's latest event for the stage
    is an assignment (an unassignment wins a tie), and the stage's holder is the
    active version with the latest such assignment -- so unassigning the holder
    hands the stage back to the version that held it before. A deregistered
    release (``M@vX!``) holds nothing; a deprecated model (``M@deprecated``
    newer than any other event of it) has no holders.
    """

    root: Path
    releases: dict[str, list[Release]] = field(default_factory=dict)       # semver ascending
    stage_events: dict[str, list[StageEvent]] = field(default_factory=dict)  # GTO's order: time, then name
    deprecated: set[str] = field(default_factory=set)
    tag_names: list[str] = field(default_factory=list)
    conflicts: dict[str, list[str]] = field(default_factory=dict)   # model -> what GTO refuses to read
    _holders: dict[str, dict[str, StageEvent]] = field(default_factory=dict, repr=False)
    _writable: bool = field(default=False, repr=False)

    def models(self) -> list[str]:
        return sorted(set(self.releases) | set(self.stage_events))

    def active_releases(self, model: str) -> list[Release]:
        return [r for r in self.releases.get(model, []) if not r.deregistered]

    def release(self, model: str, version: Version | str) -> Release | None:
        version = Version.parse(version) if isinstance(version, str) else version
        return next((r for r in self.releases.get(model, []) if r.version == version), None)

    def latest(self, model: str) -> Release | None:
        active = self.active_releases(model)
        return active[-1] if active else None

    def release_at(self, model: str, commit: str) -> Release | None:
        """The highest active release of ``model`` on ``commit``."""
        found = [r for r in self.active_releases(model) if r.commit == commit]
        return found[-1] if found else None

    def releases_at(self, model: str, commit: str) -> list[Release]:
        """Every release of ``model`` on ``commit``, deregistered ones too (GTO binds stage tags to them)."""
        return [r for r in self.releases.get(model, []) if r.commit == commit]

    def holders(self, model: str) -> dict[str, StageEvent]:
        """stage -> the assignment that gives the stage its current version, as GTO computes it."""
        if model not in self._holders:
            if model in self.conflicts:
                raise RegistryConflict(
                    f"the stages of '{model}' cannot be read: {'; '.join(self.conflicts[model])}. "
                    "GTO refuses such a registry too",
                    hint="delete the release tag that should not be there (git tag -d TAG; and on the remote: "
                         "git push --delete origin TAG)")
            self._holders[model] = {} if model in self.deprecated else \
                stage_holders(self.stage_events.get(model, []), self.releases.get(model, []))
        return self._holders[model]

    def holder(self, model: str, stage: str) -> StageEvent | None:
        return self.holders(model).get(stage)

    def runner_up(self, model: str, stage: str) -> StageEvent | None:
        """The release that would hold ``stage`` if its current holder left it: the version ``gto show``
        would name after ``gto unassign`` of the holder (unreleased commits are not candidates)."""
        holder = self.holder(model, stage)
        if holder is None:
            return None
        others = [e for e in self.stage_events.get(model, [])
                  if e.version is not None and not (e.stage == stage and e.version == holder.version)]
        return stage_holders(others, self.releases.get(model, [])).get(stage)

    def stage_history(self, model: str, stage: str) -> list[StageEvent]:
        return [e for e in self.stage_events.get(model, []) if e.stage == stage]

    def next_counter(self, model: str) -> int:
        # GTO's rule: one past the highest counter on any tag of the artifact, lightweight ones
        # included (stage assignments and unassignments, deregistrations `@v1.0.0!#N`, deprecations)
        counters = [e.counter for e in self.stage_events.get(model, []) if e.counter is not None]
        for name in self.tag_names:
            parsed = refs.parse_tag(name)
            if parsed is not None and parsed.name == model and parsed.counter is not None:
                counters.append(parsed.counter)
        return max(counters, default=0) + 1

    def stages_of(self, model: str, version: Version) -> list[str]:
        return sorted(s for s, e in self.holders(model).items() if e.version == version)


    def find_release(self, model: str, version: str) -> Release:
        """The active release ``version`` of ``model`` that a stage may go to; the error names the
        versions that exist."""
        refs.check_name(model, "model name")
        wanted = Version.parse(version)
        releases = self.active_releases(model)
        if not releases:
            raise UnknownVersion(f"model '{model}' has no releases{known.suggestion(model, self.models())}",
                                 hint=f"release one first: git model release {model} v1.0.0")
        release = self.release(model, wanted)
        if release is None or release.deregistered:
            what = "was deregistered" if release is not None else "does not exist"
            raise UnknownVersion(f"release {model}@{wanted} {what}; releases of {model}: "
                                 f"{', '.join(str(r.version) for r in releases)}")
        self.check_stageable(release)
        return release

    def check_stageable(self, release: Release) -> None:
        """Refuse a stage tag on a commit holding several versions of the model: GTO could no longer
        read the registry (it maps a commit to one version), and neither could git-model."""
        on_commit = self.releases_at(release.model, release.commit)
        if len(on_commit) > 1:
            raise StageError(f"commit {release.commit[:12]} holds several versions of {release.model} "
                             f"({', '.join(r.tag for r in on_commit)}): a stage tag on it would make `gto show` fail",
                             hint="delete the release tag that should not be there (git tag -d TAG), then try again")

    # ------------------------------------------------------------------ writes (see :func:`writing`)

    def register(self, model: str, version: Version, commit: str, message: str) -> Written:
        """Write the release tag ``<model>@v<semver>`` on ``commit``, annotated with ``message``
        (:func:`refs.release_message`)."""
        self._check_writable()
        tag = refs.release_tag(model, version)
        parsed = refs.parse_tag(tag)
        if parsed is None or parsed.kind != "release" or parsed.name != model or parsed.version != version:
            raise RegistryConflict(f"internal error: {tag!r} does not read back as a release tag")  # pragma: no cover
        if tag in self.tag_names:
            raise RegistryConflict(f"tag {tag} already exists: a release is immutable")
        # whitespace cleanup keeps the user's lines that start with '#' (git's default drops them)
        gitrepo.create_tag(self.root, tag, commit, message, cleanup="whitespace")
        self._reload()
        return Written(tag, None, message)

    def assign(self, model: str, stage: str, release: Release, by: str,
               trailers: dict[str, str | None]) -> Written:
        """Write the stage tag ``<model>#<stage>#<N>`` on the release's commit; its message records who
        assigned it and when, then ``trailers``."""
        self.check_stageable(release)
        return self._stage_tag(model, stage, release, by, trailers, unassign=False)

    def unassign(self, model: str, stage: str, release: Release, by: str,
                 trailers: dict[str, str | None]) -> Written:
        """Write GTO's unassignment ``<model>#<stage>!#<N>``: the stage goes back to the version that
        held it before (GTO's rule, :func:`stage_holders`)."""
        events = [e for e in self.stage_history(model, stage) if e.version == release.version]
        if stage not in stage_holders(events, self.releases.get(model, [])):
            raise StageError(f"{release.tag} does not hold stage '{stage}': there is nothing to unassign")
        return self._stage_tag(model, stage, release, by, trailers, unassign=True)

    def _stage_tag(self, model: str, stage: str, release: Release, by: str, trailers: dict[str, str | None],
                   unassign: bool) -> Written:
        self._check_writable()
        counter = self.next_counter(model)
        tag = (refs.unassign_tag if unassign else refs.stage_tag)(model, stage, counter)
        trailers = {"Assigned-By": by, "Assigned-At": now_iso(), **trailers}
        message = refs.stage_message(model, stage, release.version, trailers, unassign=unassign)
        # strictly increasing tag times per model: GTO and `dvc artifacts get --stage` order events by tag
        # time (one-second resolution) and would pick an arbitrary one of two made within a second
        last = max((e.time for e in self.stage_events.get(model, [])), default=0)
        when = max(int(time.time()), last + 1)
        gitrepo.create_tag(self.root, tag, release.commit, message, cleanup="whitespace", date=when)
        self._reload()
        return Written(tag, counter, message)

    def _check_writable(self) -> None:
        if not self._writable:
            raise RegistryConflict("internal error: the registry is written only under the repository lock "
                                   "(registry.writing)")

    def _reload(self) -> None:
        fresh = load(self.root)
        for name in ("releases", "stage_events", "deprecated", "tag_names", "conflicts"):
            setattr(self, name, getattr(fresh, name))
        self._holders = {}


def now_iso() -> str:
    return datetime.now(timezone.utc).astimezone().isoformat(timespec="microseconds")


@contextmanager
def writing(root: Path, wait: float = 0.0, on_wait=None):
    """The registry, read under the repository lock and writable until the block ends: what a command
    checks against it still holds when it writes."""
    from gitmodel import locking, project

    with locking.repository_lock(Path(root) / project.STATE_DIR, wait=wait, on_wait=on_wait):
        reg = load(root)
        reg._writable = True
        try:
            yield reg
        finally:
            reg._writable = False



def stage_holders(events: list[StageEvent], releases: list[Release]) -> dict[str, StageEvent]:
    """stage -> holding assignment, by GTO's rules (``Artifact.get_vstages`` with its ``gto show``
    defaults: ordered by timestamp, one version per stage). ``events`` in GTO's reading order.

    Per version and stage, the latest event (by tag time; an unassignment wins a tie) must be an
    assignment; among those versions the one assigned last holds the stage. A tie between versions
    goes to the version registered first. A stage tag on a commit without a release is a version of
    its own (GTO names it by the commit), alone: nothing else binds to it.
    """
    active = {r.version: r for r in releases if not r.deregistered}
    unreleased = 1 << 62     # GTO creates the versions of unreleased commits after every release
    vstages: dict[tuple, list[StageEvent]] = {}      # (version, stage) -> its events, in reading order
    rank: dict[object, tuple[int, int]] = {}         # version -> (registration time, reading order)
    for i, e in enumerate(events):
        if e.version is None:
            key = ("commit", i)    # GTO: every stage tag on an unreleased commit is a version alone
            rank[key] = (e.time, unreleased + i)
        elif e.version in active:
            key = e.version
            rank[key] = (active[key].time, active[key].order)
        else:
            continue               # a deregistered release holds nothing
        vstages.setdefault((key, e.stage), []).append(e)
    best: dict[str, tuple] = {}
    for (key, stage), found in vstages.items():
        newest = max(e.time for e in found)
        if any(e.unassign for e in found if e.time == newest):
            continue               # unassigned (an unassignment wins a same-second tie)
        assignment = [e for e in found if e.time == newest][-1]
        # the newest assignment wins; in a tie, the version registered first (GTO's sort order)
        score = (newest, -rank[key][0], -rank[key][1])
        if stage not in best or score > best[stage][0]:
            best[stage] = (score, assignment)
    return {stage: found for stage, (_, found) in best.items()}


def load(root: Path) -> Registry:
    """Read every tag as GTO does: annotated tags only, in tag-time order (same second: by name)."""
    registry = Registry(root=Path(root))
    tags = gitobjects.list_tags(root)
    registry.tag_names = [t["name"] for t in tags]
    ordered = sorted((t for t in tags if t["annotated"]), key=lambda t: t["time"])   # stable: name order
    parsed_tags = []
    for order, t in enumerate(ordered):
        parsed = refs.parse_tag(t["name"])
        if parsed is not None:
            parsed_tags.append((order, parsed, t))
    deregistrations: list[tuple[refs.Tag, dict]] = []
    last_event: dict[str, int] = {}
    last_deprecation: dict[str, int] = {}
    for order, parsed, t in parsed_tags:
        if parsed.kind == "deprecated":
            last_deprecation[parsed.name] = max(last_deprecation.get(parsed.name, 0), t["time"])
            continue
        last_event[parsed.name] = max(last_event.get(parsed.name, 0), t["time"])
        if parsed.kind == "release" and parsed.cancel:
            deregistrations.append((parsed, t))
        elif parsed.kind == "release":
            registry.releases.setdefault(parsed.name, []).append(Release(
                parsed.name, parsed.version, t["name"], t["commit"], t["time"], t["tagger"], t["message"],
                order=order))
    for model, releases in registry.releases.items():
        releases.sort(key=lambda r: r.version)
    for parsed, t in deregistrations:
        # GTO deregisters the version named on the same commit; a tie in time goes to the deregistration
        for r in registry.releases.get(parsed.name, []):
            if r.version == parsed.version and r.commit == t["commit"] and t["time"] >= r.time:
                r.deregistered = True
    by_commit: dict[tuple[str, str], list[Release]] = {}
    for model, releases in registry.releases.items():
        for r in releases:
            by_commit.setdefault((model, r.commit), []).append(r)
    for order, parsed, t in parsed_tags:
        if parsed.kind != "stage":
            continue
        on_commit = by_commit.get((parsed.name, t["commit"]), [])
        if len(on_commit) > 1:
            shown = ", ".join(r.tag for r in on_commit[:3]) + (f" and {len(on_commit) - 3} more"
                                                               if len(on_commit) > 3 else "")
            registry.conflicts.setdefault(parsed.name, []).append(
                f"stage tag {t['name']} points to commit {t['commit'][:12]}, which holds several versions "
                f"({shown})")
        registry.stage_events.setdefault(parsed.name, []).append(StageEvent(
            parsed.name, parsed.stage, parsed.counter, t["name"], t["commit"], t["time"], t["tagger"],
            t["message"], unassign=parsed.cancel, version=on_commit[0].version if on_commit else None,
            order=order))
    candidates = [m for m, when in last_deprecation.items() if when > last_event.get(m, -1)]
    if candidates:
        # GTO also counts the commit of every tag of the model as an event at its commit time
        commits = {m: {t["commit"] for _, parsed, t in parsed_tags if parsed.name == m and parsed.kind != "deprecated"}
                   for m in candidates}
        times = gitrepo.commit_info(root, sorted(set().union(*commits.values())))
        for m in candidates:
            last_event[m] = max([last_event.get(m, -1)] + [times[c]["time"] for c in commits[m] if c in times])
    for model, when in last_deprecation.items():
        # deprecated while the deprecation is its newest event (any other event in the same second wins)
        if when > last_event.get(model, -1):
            registry.deprecated.add(model)
    return registry


