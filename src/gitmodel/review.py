"""Human review: a sample of what the model said, scored by people against a rubric, as a versioned metric.

``git model sample`` writes a JSONL file: a first line holding the rubric (``params.yaml``
``review.rubric``: criteria, scale, guidance) and the sample's ids, then one line per request with its
input, output, label, category and empty scores::

    {"rubric": {"criteria": ["correct", "helpful"], "scale": [1, 5], "guidance": {...}},
     "sample": {"model": "chat", "source": "logs/", "n": 50, "seed": 0, "stratify": "label", "ids": [...]}}
    {"id": "7f3a", "input": "...", "output": "...", "label": "positive", "category": "delivery",
     "scores": {"correct": null, "helpful": null}, "reviewer": null, "notes": ""}

Reviewers fill ``scores`` and ``reviewer`` (lines they did not review may be deleted). ``git model review
import`` checks every line (every criterion scored within the scale, ids from the sample and each once,
a reviewer named), naming ``file:line``, and writes ``metrics/<model>/review.json``: the mean per
criterion, per category, n, the reviewers and the md5 of each sample's first line, and the same per
version whose outputs were scored (a log line carries its ``version``; a sample of an eval set's stored
outputs carries the md5 of the checkpoint that wrote them, and its release when it has one). "review" is
therefore no eval set's name (:data:`dvcyaml.REVIEW_NAME`); :mod:`reviewmetric` reads the file for
``diff``, ``gate`` and ``retrain-check``.
"""
from __future__ import annotations

import hashlib
import json
import math
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Sequence

from gitmodel import dvcyaml, params, prodlog, project, signals
from gitmodel.errors import InvalidPath, InvalidReview
from gitmodel.reviewmetric import REVIEW_KIND, group_key

SHOWN_FIELDS = ("input", "output", "label", "confidence", "category", "version", "model_md5", "ts")
review_path = dvcyaml.review_path


def release_md5s(root: Path, model: str) -> dict[str, str | None]:
    """version -> the md5 of the checkpoint its release commit tracks, for every active release of ``model``."""
    from gitmodel import registry as registry_mod
    from gitmodel import store

    releases = registry_mod.load(root).active_releases(model)
    rel = dvcyaml.model_path(model)
    tracked = store.tracked_md5s(root, [r.commit for r in releases], [rel], lenient=True)
    return {str(r.version): tracked[r.commit].get(rel) for r in releases}


# -- sample ---------------------------------------------------------------------------------------------


@dataclass
class SampleResult:
    model: str
    path: str
    n: int
    population: int
    strata: dict[str, int] = field(default_factory=dict)    # stratum -> picked

    def to_dict(self) -> dict:
        return {"model": self.model, "path": self.path, "n": self.n, "population": self.population,
                "strata": self.strata}


def _key(record: dict, stratify: str | None) -> str:
    if stratify is None:
        return ""
    found = record.get(stratify)
    return signals.MISSING if found is None else str(found)


def draw(records: Iterable[dict], n: int, seed: int = 0, stratify: str | None = None) -> tuple[list[dict], int]:
    """``n`` records drawn uniformly (one reservoir per stratum, so memory is n per stratum whatever the
    log's length), shared equally between the strata (a stratum smaller than its share gives all it has,
    the rest goes to the others). Returns (the sample, how many records there were)."""
    rng = random.Random(seed)
    reservoirs: dict[str, list[dict]] = {}
    seen: dict[str, int] = {}
    total = 0
    for record in records:
        total += 1
        key = _key(record, stratify)
        k = seen[key] = seen.get(key, 0) + 1
        pool = reservoirs.setdefault(key, [])
        if len(pool) < n:
            pool.append(record)
        else:
            j = rng.randrange(k)
            if j < n:
                pool[j] = record
    quotas = {key: 0 for key in reservoirs}
    left = min(n, total)
    while left > 0:
        open_ = [key for key in sorted(reservoirs) if quotas[key] < len(reservoirs[key])]
        share = max(left // len(open_), 1)
        for key in open_:
            take = min(share, len(reservoirs[key]) - quotas[key], left)
            quotas[key] += take
            left -= take
            if left == 0:
                break
    picked = []
    for key in sorted(reservoirs):
        pool = list(reservoirs[key])
        rng.shuffle(pool)
        picked += pool[:quotas[key]]
    return picked, total


def _eval_records(root: Path, model: str, evalset: str) -> list[dict]:
    """The eval set's examples with what the workspace's model answered (its stored outputs), each with the
    checkpoint that answered (the md5 its metrics file records, and the release of that md5 if any)."""
    from gitmodel import behaviour, jsonio, resultfiles

    out_path = root / dvcyaml.outputs_path(model, evalset)
    if not out_path.is_file():
        raise InvalidPath(f"{out_path.relative_to(root)}: no outputs of '{model}' on '{evalset}'",
                          hint=f"run `git model eval {model} --evalset {evalset}` first")
    doc = resultfiles.read_metrics(root / dvcyaml.metrics_path(model, evalset)) or {}
    md5 = (doc.get("model") or {}).get("md5")
    versions = [v for v, m in release_md5s(root, model).items() if md5 and m == md5]
    answered = {"model_md5": md5, "version": versions[-1] if versions else None}
    outputs = behaviour.parse_outputs(out_path.read_bytes(), str(out_path))
    records = []
    with open(root / dvcyaml.EVALSETS_DIR / f"{evalset}.jsonl", "rb") as lines:
        for raw in lines:
            if raw.strip():
                example = jsonio.loads(raw)
                if example.get("id") in outputs:
                    records.append({**signals.from_eval(example, outputs[example["id"]]), "id": example["id"],
                                    **answered})
    return records


def sample(model: str, out: str, *, n: int, logs: Sequence[str] = (), evalset: str | None = None, seed: int = 0,
           stratify: str | None = None, since=None, until=None, strict: bool = False,
           start: Path | None = None) -> SampleResult:
    """Write a review sample of the logs (or of the eval set's outputs) to ``out``."""
    from gitmodel import monitoring
    from gitmodel.fsutil import atomic_write

    root = project.open_root(start)
    if bool(logs) == bool(evalset):
        raise InvalidReview(out, None, "sample from the logs (--log) or from an eval set (--evalset): one of them")
    if n < 1:
        raise InvalidReview(out, None, f"--n must be at least 1, not {n}")
    rubric = params.review_rubric(root)          # before anything is read: no rubric, no sample
    target = monitoring.check_output_file(root, out)
    if logs:
        records: Iterable[dict] = prodlog.read(logs, model=model, since=since, until=until, strict=strict)
        source = ", ".join(map(str, logs))
    else:
        records = _eval_records(root, model, evalset)
        source = f"eval set {evalset}"
    picked, total = draw(records, n, seed, stratify)
    if not picked:
        raise InvalidReview(source, None, f"no record of model '{model}' to sample",
                            hint="point --log at this model's logs")
    ids, lines, strata = [], [], {}
    for i, record in enumerate(picked):
        rid = str(record.get("id") or hashlib.sha256(f"{record.get('ts')}|{record.get('input')}".encode()).hexdigest()[:16])
        while rid in ids:
            rid = f"{rid}-{i}"
        ids.append(rid)
        key = _key(record, stratify)
        strata[key] = strata.get(key, 0) + 1
        item = {"id": rid, **{k: record.get(k) for k in SHOWN_FIELDS if record.get(k) is not None}}
        item.update(scores={c: None for c in rubric["criteria"]}, reviewer=None, notes="")
        lines.append(json.dumps(item, ensure_ascii=False))
    header = {"rubric": rubric, "sample": {"model": model, "source": source, "n": len(ids), "seed": seed,
                                           "stratify": stratify, "population": total, "ids": ids}}
    atomic_write(target, "\n".join([json.dumps(header, ensure_ascii=False), *lines]) + "\n")
    return SampleResult(model, str(out), len(ids), total, strata if stratify else {})


# -- import ---------------------------------------------------------------------------------------------


@dataclass
class ImportResult:
    model: str
    path: str
    doc: dict

    def to_dict(self) -> dict:
        return {"model": self.model, "path": self.path, "review": self.doc}


def _is_number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _read_file(path: Path, seen_ids: dict[str, str]) -> tuple[dict, str, list[dict]]:
    """(the header, its md5, the scored items) of one review file, every line checked."""
    from gitmodel import jsonio

    if not path.is_file():
        raise InvalidReview(path, None, "no such file")
    raw_lines = path.read_bytes().splitlines()
    if not raw_lines:
        raise InvalidReview(path, None, "empty: a review file starts with the line `git model sample` wrote")
    try:
        header = jsonio.loads(raw_lines[0])
    except (ValueError, UnicodeDecodeError) as e:
        raise InvalidReview(path, 1, f"not JSON: {e}") from None
    sample_ = header.get("sample") if isinstance(header, dict) else None
    rubric = header.get("rubric") if isinstance(header, dict) else None
    if not isinstance(sample_, dict) or not isinstance(rubric, dict) or not isinstance(sample_.get("ids"), list):
        raise InvalidReview(path, 1, "the first line must be the sample's header (rubric and ids), as "
                                     "`git model sample` wrote it", hint="score the file `git model sample` wrote")
    criteria, scale = rubric.get("criteria"), rubric.get("scale")
    if not isinstance(criteria, list) or not criteria or not (isinstance(scale, list) and len(scale) == 2
                                                              and all(map(_is_number, scale))):
        raise InvalidReview(path, 1, "the header's rubric needs criteria and a scale [lowest, highest]")
    low, high = scale
    ids = set(map(str, sample_["ids"]))
    items = []
    for number, raw in enumerate(raw_lines[1:], start=2):
        if not raw.strip():
            continue
        try:
            item = jsonio.loads(raw)
        except (ValueError, UnicodeDecodeError) as e:
            raise InvalidReview(path, number, f"not JSON: {e}") from None
        if not isinstance(item, dict):
            raise InvalidReview(path, number, "not a JSON object")
        rid = item.get("id")
        if not isinstance(rid, str) or rid not in ids:
            raise InvalidReview(path, number, f"id {rid!r} is not in this sample",
                                hint="score the lines `git model sample` wrote; do not add lines")
        if rid in seen_ids:
            raise InvalidReview(path, number, f"id {rid!r} is scored twice (first at {seen_ids[rid]})",
                                hint="keep one line per id")
        seen_ids[rid] = f"{path}:{number}"
        scores = item.get("scores")
        if not isinstance(scores, dict):
            raise InvalidReview(path, number, f"id {rid!r}: scores must be an object of {', '.join(criteria)}")
        missing = [c for c in criteria if scores.get(c) is None]
        if missing:
            raise InvalidReview(path, number, f"id {rid!r}: criterion {', '.join(missing)} not scored",
                                hint="score every criterion, or delete the lines not reviewed")
        unknown = sorted(set(scores) - set(criteria))
        if unknown:
            raise InvalidReview(path, number, f"id {rid!r}: {unknown[0]!r} is not a criterion of the rubric "
                                              f"({', '.join(criteria)})")
        for c in criteria:
            if not _is_number(scores[c]) or not low <= scores[c] <= high:
                raise InvalidReview(path, number, f"id {rid!r}: {c} {scores[c]!r} is out of the scale "
                                                  f"[{low:g}, {high:g}]")
        reviewer = item.get("reviewer")
        if not isinstance(reviewer, str) or not reviewer.strip():
            raise InvalidReview(path, number, f"id {rid!r}: no reviewer named",
                                hint='set "reviewer" to who scored the line')
        items.append(item)
    if not items:
        raise InvalidReview(path, None, "no scored line", hint="score the sample, then import it")
    return header, hashlib.md5(raw_lines[0]).hexdigest(), items


def summarize(model: str, rubric: dict, items: list[dict], samples: list[str],
              md5s: dict[str, str | None] | None = None) -> dict:
    """The metric: mean per criterion, per category, n, reviewers, the samples' md5s, and the same per
    version whose outputs were scored. ``md5s`` (version -> checkpoint md5, :func:`release_md5s`) names
    the checkpoint of a log line's version."""
    criteria = rubric["criteria"]
    md5s = md5s or {}

    def means(group: list[dict]) -> dict:
        return {c: round(sum(float(i["scores"][c]) for i in group) / len(group), 4) for c in criteria}

    def by_category(group: list[dict]) -> dict:
        categories: dict[str, list[dict]] = {}
        for item in group:
            categories.setdefault(str(item.get("category") or signals.MISSING), []).append(item)
        return {k: {**means(v), "n": len(v)} for k, v in sorted(categories.items())}

    versions: dict[str, dict] = {}
    groups: dict[str, list[dict]] = {}
    for item in items:
        version = item.get("version") if isinstance(item.get("version"), str) and item["version"] else None
        md5 = item.get("model_md5") if isinstance(item.get("model_md5"), str) else None
        md5 = md5 or md5s.get(version)
        key = group_key(version, md5)
        versions.setdefault(key, {"version": version, "model_md5": md5})
        groups.setdefault(key, []).append(item)
    return {"schema_version": 1, "kind": REVIEW_KIND, "model": model, "rubric": rubric, "samples": samples,
            "n": len(items), "reviewers": sorted({i["reviewer"].strip() for i in items}),
            "versions": {k: {**versions[k], "reviewers": sorted({i["reviewer"].strip() for i in g})}
                         for k, g in sorted(groups.items())},
            "metrics": {"mean": means(items), "by_category": by_category(items),
                        "by_version": {k: {"n": len(g), "mean": means(g), "by_category": by_category(g)}
                                       for k, g in sorted(groups.items())}}}


def import_reviews(files: Sequence[str], start: Path | None = None) -> ImportResult:
    """Check every scored line of ``files`` (all of one model and one rubric), then write the metric."""
    from gitmodel import gitrepo
    from gitmodel.fsutil import atomic_write

    root = project.open_root(start)
    seen: dict[str, str] = {}
    model, rubric, items, samples = None, None, [], []
    for name in files:
        header, md5, scored = _read_file(Path(name), seen)
        if model is not None and header["sample"].get("model") != model:
            raise InvalidReview(name, 1, f"a sample of model {header['sample'].get('model')!r}, not {model!r}",
                                hint="import one model's reviews at a time")
        if rubric is not None and header["rubric"] != rubric:
            raise InvalidReview(name, 1, "scored against another rubric than the other files")
        model, rubric = header["sample"].get("model"), header["rubric"]
        items += scored
        samples.append(md5)
    if not isinstance(model, str):
        raise InvalidReview(files[0], 1, "the header names no model")
    from gitmodel import refs

    refs.check_name(model, "model name")
    needs = any(i.get("version") and not i.get("model_md5") for i in items)
    doc = summarize(model, rubric, items, samples, release_md5s(root, model) if needs else None)
    rel = review_path(model)
    target = root / rel
    target.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(target, json.dumps(doc, indent=2) + "\n")
    gitrepo.stage(root, [rel])
    return ImportResult(model, rel, doc)


def load_summary(root: Path, model: str) -> dict | None:
    """The review metric of the workspace, or None when none was imported."""
    from gitmodel import reviewmetric

    path = Path(root) / review_path(model)
    if not path.is_file():
        return None
    return reviewmetric.parse(path.read_bytes(), review_path(model))
