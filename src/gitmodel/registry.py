"""The registry read model: releases and stages from git tags, and results at any revision.

Everything is read from git objects: one ``git for-each-ref`` for the tags and
one ``git cat-file --batch`` for the metrics blobs, never a checkout and never
a DVC repo object per revision, so history commands stay fast as releases pile up.
Versions are ordered by SemVer, never by tag time.
"""
from __future__ import annotations

import difflib
import json
from dataclasses import dataclass, field
from pathlib import Path

from gitmodel import dvcyaml, gitrepo, refs
from gitmodel.errors import GitModelError, InvalidMetrics
from gitmodel.refs import Version

WORKSPACE = gitrepo.WORKSPACE


class UnknownRevision(GitModelError):
    pass


class RegistryConflict(GitModelError):
    """Tags that GTO refuses to read (and so does git-model, so that the two never disagree)."""


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
    tags = gitrepo.list_tags(root)
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


# ----------------------------------------------------------------------------- revisions


@dataclass
class Revision:
    """A resolved revision: a commit, or the workspace."""

    text: str                 # what the user typed
    commit: str | None        # None for the workspace
    model: str | None = None  # set for registry references (chat@v1, chat#prod)
    release: Release | None = None

    @property
    def is_workspace(self) -> bool:
        return self.commit is None

    @property
    def label(self) -> str:
        if self.is_workspace:
            return WORKSPACE
        if self.release and self.text != self.release.tag:
            return f"{self.text} ({self.release.tag})"
        return self.text


def _closest(text: str, candidates: list[str]) -> str:
    close = difflib.get_close_matches(text, candidates, n=3, cutoff=0.5)
    return f"; did you mean {', '.join(close)}?" if close else ""


def resolve(root: Path, text: str, registry: Registry | None = None) -> Revision:
    """``workspace``, ``<model>@vX.Y.Z``, ``<model>@latest``, ``<model>#<stage>`` or any git revision."""
    if text in (WORKSPACE, "", None):
        return Revision(WORKSPACE, None)
    if text.startswith("-"):
        raise UnknownRevision(f"invalid revision {text!r}: revisions do not start with '-'")
    if "@" in text and not text.startswith("@"):
        registry = registry or load(root)
        model, _, version = text.partition("@")
        if refs.NAME_RE.match(model) and (version in ("latest", "greatest") or version.startswith("v")
                                          or refs.VERSION_RE.match(f"v{version}")):
            if version in ("latest", "greatest"):
                release = registry.latest(model)
                if release is None:
                    close = _closest(model, registry.models())
                    raise UnknownRevision(f"{text}: model '{model}' has no releases{close}",
                                          hint=None if close else f"release one with `git model release {model} v1.0.0`")
            else:
                try:
                    release = registry.release(model, version)
                except GitModelError:
                    raise UnknownRevision(f"{text}: {version!r} is not a SemVer version like v1.2.0") from None
                if release is None:
                    versions = [str(r.version) for r in registry.active_releases(model)]
                    known = f"; releases of {model}: {', '.join(versions[-5:])}" if versions else \
                        f"; model '{model}' has no releases{_closest(model, registry.models())}"
                    raise UnknownRevision(f"unknown release {text}{known}")
            return Revision(text, release.commit, model, release)
    if "#" in text:
        registry = registry or load(root)
        model, _, stage = text.partition("#")
        if refs.NAME_RE.match(model) and refs.NAME_RE.match(stage):
            event = registry.holder(model, stage)
            if event is None:
                stages = sorted(registry.holders(model))
                known = f"; stages of {model}: {', '.join(stages)}" if stages else \
                    f"; '{model}' is deprecated (a {model}@deprecated tag is its newest), so no stage " \
                    "holds it" if model in registry.deprecated else \
                    "" if model in registry.models() else \
                    f"; model '{model}' has no releases or stages{_closest(model, registry.models())}"
                raise UnknownRevision(f"{text}: no version of '{model}' holds stage '{stage}'{known}",
                                      hint=f"promote one with `git model promote {model} VERSION --stage {stage}`")
            release = registry.release_at(model, event.commit)
            return Revision(text, event.commit, model, release)
    kinds = gitrepo.ref_kinds(root, text)
    if "branch" in kinds and "tag" in kinds:
        raise UnknownRevision(f"{text!r} is both a branch and a tag: git-model does not guess",
                              hint=f"say which: refs/heads/{text} or refs/tags/{text}")
    commit = gitrepo.resolve_commit(root, text)
    if commit is None:
        registry = registry or load(root)
        branches = gitrepo.run_git(root, "for-each-ref", "--format=%(refname:short)", "refs/heads").decode().split()
        hint = (f"a model is not a revision: name one of its versions, e.g. {text}@latest, {text}@v1.0.0 "
                f"or {text}#prod" if text in registry.models() else None)
        raise UnknownRevision(f"unknown revision {text!r}{_closest(text, registry.tag_names + branches)}", hint=hint)
    return Revision(text, commit)


# ----------------------------------------------------------------------------- results at a revision


@dataclass
class Result:
    """One stored eval result: metrics/<model>/<evalset>.json (+ its outputs file) at a revision."""

    model: str
    evalset: str
    path: str
    doc: dict
    outputs: bytes | None = None


def _parse(data: bytes, source: str, validate: bool) -> dict:
    try:
        doc = json.loads(data)
    except (ValueError, UnicodeDecodeError) as e:
        raise InvalidMetrics(f"{source}: not valid JSON: {e}") from None
    if validate:
        from gitmodel import metrics

        metrics.validate_metrics(doc, source)
    elif not isinstance(doc, dict) or doc.get("schema_version") != 1 or not isinstance(doc.get("metrics"), dict):
        raise InvalidMetrics(f"{source}: not a git-model metrics file (schema_version 1)")
    return doc


def results_at(root: Path, rev: Revision, model: str | None = None, evalset: str | None = None,
               with_outputs: bool = False, reader: gitrepo.ObjectReader | None = None,
               validate: bool = True) -> list[Result]:
    """Every stored result (optionally of one model / eval set) at a revision, from git objects."""
    root = Path(root)
    if not rev.is_workspace:
        return results_at_many(root, [rev], model, evalset, with_outputs, reader, validate)[0]
    found: list[tuple[str, str, str]] = []   # (model, evalset, path)
    base = root / dvcyaml.METRICS_DIR
    models = [model] if model else sorted(p.name for p in base.iterdir() if p.is_dir()) if base.is_dir() else []
    for m in models:
        folder = base / m
        if not folder.is_dir():
            continue
        for p in sorted(folder.glob("*.json")):
            if evalset is None or p.stem == evalset:
                found.append((m, p.stem, p.relative_to(root).as_posix()))
    results = []
    for m, e, path in found:
        doc = _parse((root / path).read_bytes(), f"{path} (workspace)", validate)
        out = root / dvcyaml.outputs_path(m, e)
        results.append(Result(m, e, path, doc, out.read_bytes() if with_outputs and out.is_file() else None))
    return results


def results_at_many(root: Path, revs: list[Revision], model: str | None = None, evalset: str | None = None,
                    with_outputs: bool = False, reader: gitrepo.ObjectReader | None = None,
                    validate: bool = True) -> list[list[Result]]:
    """:func:`results_at` for many revisions (never the workspace) in three round trips to one
    ``git cat-file --batch``, whatever their number: the history of a thousand releases
    costs what one revision costs, plus reading the blobs."""
    root = Path(root)
    own = reader is None
    reader = reader or gitrepo.ObjectReader(root)
    try:
        # 1. the metrics/<model> folder of every revision
        if model:
            folders = [[(model, f"{r.commit}:{dvcyaml.METRICS_DIR}/{model}")] for r in revs]
        else:
            tops = reader.read_many([f"{r.commit}:{dvcyaml.METRICS_DIR}" for r in revs])
            folders = [[(m, f"{r.commit}:{dvcyaml.METRICS_DIR}/{m}") for mode, m, _ in gitrepo.tree_entries(top[1])
                        if mode == "40000"] if top and top[0] == "tree" else [] for r, top in zip(revs, tops)]
        trees = iter(reader.read_many([spec for entries in folders for _, spec in entries]))
        # 2. the metrics blobs in them, each read once (an unchanged file is one blob in many releases)
        found: list[list[tuple[str, str, str, str]]] = []   # per revision: (model, evalset, path, blob sha)
        for entries in folders:
            files = []
            for m, _ in entries:
                tree = next(trees)
                if tree is None or tree[0] != "tree":
                    continue
                for mode, name, sha in gitrepo.tree_entries(tree[1]):
                    if mode.startswith("100") and name.endswith(".json") and (evalset is None or name[:-5] == evalset):
                        files.append((m, name[:-5], f"{dvcyaml.METRICS_DIR}/{m}/{name}", sha))
            found.append(files)
        shas = list(dict.fromkeys(sha for files in found for *_, sha in files))
        blobs = dict(zip(shas, reader.read_many(shas)))
        outputs: dict[str, tuple[str, bytes] | None] = {}
        if with_outputs:
            specs = [f"{r.commit}:{dvcyaml.outputs_path(m, e)}" for r, files in zip(revs, found) for m, e, _, _ in files]
            outputs = dict(zip(specs, reader.read_many(specs)))
    finally:
        if own:
            reader.close()
    checked = ValidatedBlobs(root) if validate else None
    every = []
    try:
        for rev, files in zip(revs, found):
            results = []
            for m, e, path, sha in files:
                source = f"{path} at {rev.text}"
                blob = blobs[sha]
                if blob is None:
                    raise InvalidMetrics(f"{source}: blob {sha} is missing from the git object store",
                                         hint="fetch the full history (`git fetch --unshallow`)")
                doc = _parse(blob[1], source, validate and sha not in checked)
                if checked is not None:
                    checked.add(sha)
                out = outputs.get(f"{rev.commit}:{dvcyaml.outputs_path(m, e)}") if with_outputs else None
                results.append(Result(m, e, path, doc, out[1] if out else None))
            every.append(results)
    finally:
        if checked is not None:
            checked.save()
    return every


class ValidatedBlobs:
    """Metrics blobs already checked against the schema, by git blob sha.

    Every metrics file is validated when read. A blob never
    changes, so validating each one once is enough: history commands then read
    a thousand releases without importing jsonschema. Kept in
    .dvc/tmp/gitmodel/ (ignored by git), one sha per line, in a file per
    schema and git-model version, so a new schema validates everything again.
    """

    # project.STATE_DIR, not imported from there: that would bring fsutil, store and
    # params onto the path of `git model log` (a test checks that the two agree)
    STATE_DIR = ".dvc/tmp/gitmodel"

    def __init__(self, root: Path):
        import hashlib

        from gitmodel import __version__

        schema = (Path(__file__).parent / "schemas" / "metrics.schema.json").read_bytes()
        key = hashlib.md5(schema + __version__.encode()).hexdigest()[:12]
        dvc_dir = Path(root) / ".dvc"
        self.path = dvc_dir.parent / self.STATE_DIR / f"validated-metrics-{key}" if dvc_dir.is_dir() else None
        self._known: set[str] | None = None
        self._new: list[str] = []

    def _load(self) -> set[str]:
        if self._known is None:
            self._known = set()
            try:
                lines = self.path.read_text("ascii").split() if self.path else []
            except (OSError, UnicodeDecodeError):
                lines = []   # a damaged cache only means validating again
            self._known = {line for line in lines if len(line) in (40, 64)}
        return self._known

    def __contains__(self, sha: str) -> bool:
        return sha in self._load()

    def add(self, sha: str) -> None:
        if sha not in self._load():
            self._known.add(sha)
            self._new.append(sha)

    def save(self) -> None:
        if not self._new or self.path is None:
            return
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with open(self.path, "a", encoding="ascii") as f:   # appends: concurrent readers see whole lines
                f.write("".join(f"{sha}\n" for sha in self._new))
            self._new = []
        except OSError:
            pass
