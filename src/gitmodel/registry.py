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


@dataclass
class Release:
    model: str
    version: Version
    tag: str
    commit: str
    time: int
    tagger: str = ""
    message: str = ""
    deregistered: bool = False       # GTO's `<model>@vX!`


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
    version: Version | None = None   # the release at the tagged commit


@dataclass
class Registry:
    root: Path
    releases: dict[str, list[Release]] = field(default_factory=dict)       # semver ascending
    stage_events: dict[str, list[StageEvent]] = field(default_factory=dict)  # assignment order
    deprecated: set[str] = field(default_factory=set)
    tag_names: list[str] = field(default_factory=list)

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

    def holders(self, model: str) -> dict[str, StageEvent]:
        """stage -> the event that gave the stage its current version."""
        current: dict[str, StageEvent] = {}
        for event in self.stage_events.get(model, []):
            if event.unassign:
                current.pop(event.stage, None)
            else:
                current[event.stage] = event
        return current

    def holder(self, model: str, stage: str) -> StageEvent | None:
        return self.holders(model).get(stage)

    def stage_history(self, model: str, stage: str) -> list[StageEvent]:
        return [e for e in self.stage_events.get(model, []) if e.stage == stage]

    def next_counter(self, model: str) -> int:
        counters = [e.counter for e in self.stage_events.get(model, []) if e.counter is not None]
        counters += [r.counter for r in () if r]  # releases carry no counter in our tags
        return max(counters, default=0) + 1

    def stages_of(self, model: str, version: Version) -> list[str]:
        return sorted(s for s, e in self.holders(model).items() if e.version == version)


def load(root: Path) -> Registry:
    registry = Registry(root=Path(root))
    tags = gitrepo.list_tags(root)
    registry.tag_names = [t["name"] for t in tags]
    cancelled: set[tuple[str, Version]] = set()
    stage_raw = []
    for t in tags:
        parsed = refs.parse_tag(t["name"])
        if parsed is None:
            continue
        if parsed.kind == "release":
            if parsed.cancel:
                cancelled.add((parsed.name, parsed.version))
                continue
            registry.releases.setdefault(parsed.name, []).append(Release(
                parsed.name, parsed.version, t["name"], t["commit"], t["time"], t["tagger"], t["message"]))
        elif parsed.kind == "stage":
            stage_raw.append((parsed, t))
        else:
            registry.deprecated.add(parsed.name)
    for model, releases in registry.releases.items():
        releases.sort(key=lambda r: r.version)
        for r in releases:
            r.deregistered = (model, r.version) in cancelled
    for parsed, t in stage_raw:
        release = registry.release_at(parsed.name, t["commit"])
        registry.stage_events.setdefault(parsed.name, []).append(StageEvent(
            parsed.name, parsed.stage, parsed.counter, t["name"], t["commit"], t["time"], t["tagger"],
            t["message"], unassign=parsed.cancel, version=release.version if release else None))
    for events in registry.stage_events.values():
        # GTO orders assignments by their counter; tags without one (old GTO) by time
        events.sort(key=lambda e: (e.counter if e.counter is not None else -1, e.time))
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
        if refs.NAME_RE.match(model) and (version in ("latest", "greatest") or version.startswith("v")):
            if version in ("latest", "greatest"):
                release = registry.latest(model)
                if release is None:
                    raise UnknownRevision(f"{text}: model '{model}' has no releases{_closest(model, registry.models())}",
                                          hint=f"release one with `git model release {model} v1.0.0`")
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
                known = f"; stages of {model}: {', '.join(stages)}" if stages else ""
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
        raise UnknownRevision(f"unknown revision {text!r}{_closest(text, registry.tag_names + branches)}")
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
    found: list[tuple[str, str, str]] = []   # (model, evalset, path)
    root = Path(root)
    if rev.is_workspace:
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
    own = reader is None
    reader = reader or gitrepo.ObjectReader(root)
    try:
        folder_specs = [f"{rev.commit}:{dvcyaml.METRICS_DIR}/{model}"] if model else None
        if folder_specs is None:
            top = reader.read_many([f"{rev.commit}:{dvcyaml.METRICS_DIR}"])[0]
            models = [n for mode, n, _ in gitrepo.tree_entries(top[1]) if mode == "40000"] if top else []
            folder_specs = [f"{rev.commit}:{dvcyaml.METRICS_DIR}/{m}" for m in models]
        trees = reader.read_many(folder_specs)
        blob_specs = []
        for spec, tree in zip(folder_specs, trees):
            if tree is None or tree[0] != "tree":
                continue
            m = spec.rsplit("/", 1)[1]
            for mode, name, sha in gitrepo.tree_entries(tree[1]):
                if name.endswith(".json") and (evalset is None or name[:-5] == evalset):
                    found.append((m, name[:-5], f"{dvcyaml.METRICS_DIR}/{m}/{name}"))
                    blob_specs.append(sha)
                    if with_outputs:
                        blob_specs.append(f"{rev.commit}:{dvcyaml.outputs_path(m, name[:-5])}")
        blobs = reader.read_many(blob_specs)
    finally:
        if own:
            reader.close()
    results = []
    step = 2 if with_outputs else 1
    for i, (m, e, path) in enumerate(found):
        blob = blobs[i * step]
        doc = _parse(blob[1], f"{path} at {rev.text}", validate)
        outputs = blobs[i * step + 1][1] if with_outputs and blobs[i * step + 1] else None
        results.append(Result(m, e, path, doc, outputs))
    return results
