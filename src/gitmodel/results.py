"""Stored eval results at a revision: ``metrics/<model>/<evalset>.json`` (and its outputs file).

Read from git objects through one ``git cat-file --batch``, never a checkout,
so history commands stay fast as releases pile up; each metrics blob is
validated once and remembered by its sha (:class:`ValidatedBlobs`).
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from gitmodel import jsonio
from gitmodel import dvcyaml, gitrepo, pairs
from gitmodel.errors import InvalidMetrics

if TYPE_CHECKING:
    from gitmodel.revisions import Revision


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
        doc = jsonio.loads(data)
    except (ValueError, UnicodeDecodeError) as e:
        raise InvalidMetrics(f"{source}: not valid JSON: {e}") from None
    if validate:
        from gitmodel import resultfiles

        resultfiles.validate_metrics(doc, source)
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
            if dvcyaml.is_result_file(p.name) and (evalset is None or p.stem == evalset):
                found.append((m, p.stem, p.relative_to(root).as_posix()))
    [declared] = pairs.declared_at(root, [None])
    results = []
    checked = ValidatedBlobs(root) if validate and found else None
    for m, e, path in found:
        if declared is not None and (m, e) not in declared:
            continue   # orphaned: metrics of a pair dvc.yaml no longer declares are never read as results
        data = (root / path).read_bytes()
        # the sha git would give these bytes: a file committed unchanged was validated when first read
        sha = hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()
        doc = _parse(data, f"{path} (workspace)", validate and sha not in checked)
        if checked is not None:
            checked.add(sha)
        out = root / dvcyaml.outputs_path(m, e)
        results.append(Result(m, e, path, doc, out.read_bytes() if with_outputs and out.is_file() else None))
    if checked is not None:
        checked.save()
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
                    if mode.startswith("100") and dvcyaml.is_result_file(name) and (evalset is None or name[:-5] == evalset):
                        files.append((m, name[:-5], f"{dvcyaml.METRICS_DIR}/{m}/{name}", sha))
            found.append(files)
        # orphaned metrics (of a pair the revision's dvc.yaml does not declare) are not results there
        declared = pairs.declared_at(root, [r.commit for r in revs], reader)
        found = [[f for f in files if d is None or (f[0], f[1]) in d] for files, d in zip(found, declared)]
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
