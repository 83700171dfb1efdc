"""Human review as a metric of a model version: ``metrics/<model>/review.json`` at a revision, the part of it
that scored the checkpoint that revision tracks, and two of them compared (what ``diff`` shows and ``gate``
judges).

A review file holds, besides its overall means, one group per version whose outputs were scored
(``versions`` and ``metrics.by_version``, keyed by the version, else ``md5:<checkpoint md5>``): a sample
of a canary's log mixes two versions, and each is judged on its own. A revision's review is the group
whose checkpoint md5 is the one the revision tracks (or, for a group without an md5, whose version is
the revision's release); it is looked for in the review file at that revision, then in the one at the
other side of the comparison (a prod version is often reviewed from its logs after it was released).
Light on purpose (git objects, no DVC, no YAML): ``diff`` imports it.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

from gitmodel import dvcyaml, gitrepo
from gitmodel.errors import InvalidReview

if TYPE_CHECKING:
    from gitmodel.revisions import Revision

REVIEW_KIND = "git-model review"
SAME, BETTER, WORSE = "same", "better", "worse"


def shown(key: str) -> str:
    """A group's key as printed: a checkpoint md5 shortened to 12 digits."""
    return key[:16] if key.startswith("md5:") else key


def group_key(version: str | None, model_md5: str | None) -> str:
    """The name of the group of reviews of one version's outputs."""
    if version:
        return str(version)
    return f"md5:{model_md5}" if model_md5 else "unknown"


def parse(data: bytes, source: str) -> dict:
    """A review file from its bytes; ``source`` names it in errors."""
    try:
        doc = json.loads(data)
    except (ValueError, UnicodeDecodeError) as e:
        raise InvalidReview(source, None, f"not readable JSON: {e}",
                            hint="import the reviews again with `git model review import`") from None
    if not isinstance(doc, dict) or doc.get("kind") != REVIEW_KIND or not isinstance(doc.get("metrics"), dict):
        raise InvalidReview(source, None, "not a git-model review file",
                            hint="import the reviews again with `git model review import`")
    return doc


def read_at(root: Path, revs: Sequence["Revision"], model: str,
            reader: gitrepo.ObjectReader | None = None) -> list[dict | None]:
    """The review file of ``model`` at each revision (the workspace's file for the workspace), or None."""
    rel = dvcyaml.review_path(model)
    specs = [f"{r.commit}:{rel}" for r in revs if not r.is_workspace]
    blobs = gitrepo.read_blobs(root, specs, reader) if specs else {}
    docs = []
    for rev in revs:
        if rev.is_workspace:
            path = Path(root) / rel
            data = path.read_bytes() if path.is_file() else None
        else:
            data = blobs.get(f"{rev.commit}:{rel}")
        docs.append(None if data is None else parse(data, f"{rel} at {rev.label}"))
    return docs


@dataclass
class ReviewSide:
    """The human review of one revision's checkpoint: its group of a review file, or why there is none."""

    revision: str                               # the revision's label
    source: str | None = None                   # "metrics/chat/review.json at chat@v1.2.0"
    version: str | None = None                  # the version reviewed, or md5:<checkpoint md5, short>
    model_md5: str | None = None                # the checkpoint whose outputs were scored
    n: int = 0
    mean: dict[str, float] = field(default_factory=dict)
    by_category: dict[str, dict] = field(default_factory=dict)
    reviewers: list[str] = field(default_factory=list)
    scale: list | None = None
    note: str = ""                              # why not reviewed
    group: str | None = None                    # the group's key in the review file

    @property
    def reviewed(self) -> bool:
        return self.n > 0

    def to_dict(self) -> dict:
        return {"revision": self.revision, "reviewed": self.reviewed, "source": self.source,
                "version": self.version, "model_md5": self.model_md5, "n": self.n, "mean": self.mean,
                "by_category": self.by_category, "reviewers": self.reviewers, "scale": self.scale,
                "note": self.note or None, "group": self.group}


def _groups(doc: dict) -> dict[str, dict]:
    versions = doc.get("versions") if isinstance(doc.get("versions"), dict) else {}
    by_version = doc["metrics"].get("by_version") if isinstance(doc["metrics"].get("by_version"), dict) else {}
    return {key: {**(versions.get(key) or {}), **entry} for key, entry in by_version.items()
            if isinstance(entry, dict)}


def _matches(group: dict, md5: str | None, version: str | None) -> bool:
    if group.get("model_md5"):
        return md5 is not None and group["model_md5"] == md5
    return version is not None and group.get("version") == version


def side_of(revision: str, files: Sequence[tuple[str, dict | None]], md5: str | None,
            version: str | None) -> ReviewSide:
    """The review of the checkpoint ``md5`` (the revision's release ``version``) in the first of ``files``
    ((source, review document or None)) that scored its outputs, pure."""
    for source, doc in files:
        if doc is None:
            continue
        for key, group in _groups(doc).items():
            if _matches(group, md5, version) and isinstance(group.get("n"), int) and group["n"] > 0:
                # a checkpoint reviewed before its release is named by md5: the revision knows its version
                return ReviewSide(revision, source, group.get("version") or version or shown(key),
                                  group.get("model_md5") or md5, group["n"],
                                  dict(group.get("mean") or {}), dict(group.get("by_category") or {}),
                                  list(group.get("reviewers") or doc.get("reviewers") or []),
                                  (doc.get("rubric") or {}).get("scale"), group=key)
    present = [(source, doc) for source, doc in files if doc is not None]
    if not present:
        return ReviewSide(revision, note="no review imported")
    scored = sorted({shown(key) for _, doc in present for key in _groups(doc)})
    what = f"checkpoint md5 {md5[:12]}" if md5 else "this checkpoint"
    return ReviewSide(revision, note=f"{present[0][0]} scored the outputs of {', '.join(scored) or 'no known version'}, "
                                     f"not of {version or what}")


def _version_of(root: Path, model: str, rev: "Revision", registry) -> tuple[str | None, object]:
    """(the release version of ``rev``'s commit or None, the registry, loaded when it had to be)."""
    if rev.release is not None and rev.release.model == model:
        return str(rev.release.version), registry
    if rev.is_workspace:
        return None, registry
    if registry is None:
        from gitmodel import registry as registry_mod

        registry = registry_mod.load(root)
    release = registry.release_at(model, rev.commit)
    return (str(release.version) if release else None), registry


def sides(root: Path, model: str, revs: Sequence["Revision"], registry=None,
          reader: gitrepo.ObjectReader | None = None, look_in: Sequence["Revision"] = ()) -> list[ReviewSide] | None:
    """The review of each revision's checkpoint of ``model``, looked for in the review files at ``look_in``,
    then in its own, then at the other revisions; None when none of them holds a review file."""
    from gitmodel import store

    order = list({(r.commit, r.text): r for r in [*look_in, *revs]}.values())
    docs = read_at(root, order, model, reader)
    if all(doc is None for doc in docs):
        return None
    rel = dvcyaml.model_path(model)
    tracked = store.tracked_md5s(root, [r.commit for r in revs], [rel], reader=reader, lenient=True)
    needs_versions = any(not g.get("model_md5") for doc in docs if doc for g in _groups(doc).values())
    files = {(r.commit, r.text): (f"{dvcyaml.review_path(model)} at {r.label}", doc) for r, doc in zip(order, docs)}
    found = []
    for rev in revs:
        version = str(rev.release.version) if rev.release is not None and rev.release.model == model else None
        if version is None and needs_versions:
            version, registry = _version_of(root, model, rev, registry)
        keys = [(r.commit, r.text) for r in look_in] + [(rev.commit, rev.text)] + [(r.commit, r.text) for r in revs]
        found.append(side_of(rev.label, [files[k] for k in dict.fromkeys(keys)], tracked[rev.commit].get(rel), version))
    return found


def gate_keys(root: Path, found: Sequence[ReviewSide | None]) -> list[str]:
    """The gate rows a human review may have (``review``, ``review.<criterion>``): the criteria of the
    reviews ``found`` and of params.yaml's rubric, so that a tolerance or tradeoff naming one is known
    even when a side was not reviewed."""
    from gitmodel import params
    from gitmodel.errors import GitModelError
    from gitmodel.gatepolicy import REVIEW

    criteria = [c for side in found if side is not None for c in side.mean]
    try:
        criteria += params.review_rubric(root)["criteria"]
    except GitModelError:
        pass   # no rubric: the reviews' own criteria only
    return [REVIEW] + [f"{REVIEW}.{c}" for c in dict.fromkeys(criteria)]


@dataclass
class ReviewRow:
    """One criterion (or one criterion of one category) at the two sides."""

    criterion: str
    old: float | None
    new: float | None
    old_n: int
    new_n: int
    category: str | None = None

    @property
    def change(self) -> float | None:
        return None if self.old is None or self.new is None else round(self.new - self.old, 6)

    @property
    def verdict(self) -> str | None:
        change = self.change
        if change is None:
            return None
        return SAME if abs(change) < 1e-9 else BETTER if change > 0 else WORSE   # higher is better

    def to_dict(self) -> dict:
        return {"criterion": self.criterion, "category": self.category, "old": self.old, "new": self.new,
                "change": self.change, "old_n": self.old_n, "new_n": self.new_n, "verdict": self.verdict}


@dataclass
class ReviewDiff:
    """The human review of one model at two revisions, criterion by criterion (higher is better)."""

    model: str
    path: str
    old: ReviewSide
    new: ReviewSide
    rows: list[ReviewRow]
    categories: list[ReviewRow]
    gate: Any = None            # reviewgate.ReviewGate of new against old, for diff's verdict (--md)

    def dvc_entry(self, all: bool = False) -> dict:
        """Its part of ``diff --json`` in ``dvc metrics diff``'s shape, ``{key: {"old", "new", "diff"}}``
        (a side not reviewed is null), unchanged keys only with ``all``."""
        entry = {}
        values = [(f"mean.{r.criterion}", r.old, r.new) for r in self.rows]
        values.append(("n", self.old.n if self.old.reviewed else None, self.new.n if self.new.reviewed else None))
        for key, old, new in values:
            if old == new and not all:
                continue
            entry[key] = {"old": old, "new": new}
            if old is not None and new is not None:
                entry[key]["diff"] = round(new - old, 6)
        return entry

    def to_dict(self) -> dict:
        return {"model": self.model, "path": self.path, "old": self.old.to_dict(), "new": self.new.to_dict(),
                "criteria": [r.to_dict() for r in self.rows], "categories": [r.to_dict() for r in self.categories]}


def compare(model: str, old: ReviewSide, new: ReviewSide) -> ReviewDiff:
    """The two sides' means per criterion and per category and criterion, pure."""
    criteria = list(dict.fromkeys([*old.mean, *new.mean]))
    rows = [ReviewRow(c, old.mean.get(c), new.mean.get(c), old.n, new.n) for c in criteria]
    categories = []
    for category in sorted({*old.by_category, *new.by_category}):
        o, n = old.by_category.get(category) or {}, new.by_category.get(category) or {}
        for c in criteria:
            categories.append(ReviewRow(c, o.get(c), n.get(c), int(o.get("n") or 0), int(n.get("n") or 0), category))
    return ReviewDiff(model, dvcyaml.review_path(model), old, new, rows, categories)
