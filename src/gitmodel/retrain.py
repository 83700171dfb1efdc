"""``git model retrain-check``: should the production checkpoint be retrained? Rules, never a schedule.

Each rule has its figure, its threshold (``params.yaml`` ``retrain:`` and the model's risk tier) and its
verdict: ``fires``, ``holds`` or ``not checked`` (with why: no logs given, no size recorded...).

- input drift: the largest PSI of an input signal of the logs against prod's baseline (``drift``);
- accuracy: prod's accuracy on the eval set as it is now, against the accuracy stored at its release
  tag; when the eval set changed since, prod is evaluated on it now (from the DVC cache, nothing
  written). Fires when it dropped by more than the tier's ``accuracy_drop`` (absolute);
- new data: the dataset in prod's lineage grew by ``data_growth`` (lines; bytes when lines are not known);
- human review: a criterion's mean below ``review_floor``, or one category below ``category_floor``
  over at least ``min_category_reviews`` reviews;
- domain shift: an event of ``retrain.events`` dated after prod's ``trained_at``.

"retrain" when a rule fires (exit 1), "do not retrain" otherwise, with every rule's figure. It never
retrains: retraining is a decision people make with these figures.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Sequence

from gitmodel import params, project, store
from gitmodel.errors import GitModelError

FIRES, HOLDS, NOT_CHECKED = "fires", "holds", "not checked"


@dataclass
class Rule:
    name: str
    verdict: str                 # fires | holds | not checked
    figure: object = None
    threshold: object = None
    why: str = ""

    def to_dict(self) -> dict:
        return {"rule": self.name, "verdict": self.verdict, "figure": self.figure, "threshold": self.threshold,
                "why": self.why}


@dataclass
class RetrainResult:
    model: str
    prod: str                    # "chat#prod (chat@v1.2.0)"
    tier: dict
    rules: list[Rule] = field(default_factory=list)

    @property
    def retrain(self) -> bool:
        return any(r.verdict == FIRES for r in self.rules)

    @property
    def verdict(self) -> str:
        return "retrain" if self.retrain else "do not retrain"

    def to_dict(self) -> dict:
        return {"model": self.model, "prod": self.prod, "tier": self.tier, "verdict": self.verdict,
                "reasons": [r.why for r in self.rules if r.verdict == FIRES],
                "rules": [r.to_dict() for r in self.rules]}


# -- each rule, from plain figures (pure) ---------------------------------------------------------------


def input_drift_rule(psis: dict[str, float | None], threshold: float) -> Rule:
    measured = {k: v for k, v in psis.items() if v is not None}
    if not measured:
        return Rule("input drift", NOT_CHECKED, None, threshold, "no input signal could be measured")
    worst = max(measured, key=measured.get)
    value = measured[worst]
    if value >= threshold:
        return Rule("input drift", FIRES, value, threshold, f"{worst} PSI {value:.3f} >= {threshold:g}")
    return Rule("input drift", HOLDS, value, threshold, f"largest input PSI {value:.3f} ({worst}) < {threshold:g}")


def accuracy_rule(evalset: str, launch: float | None, now: float | None, allowed: float, risk: str,
                  how: str) -> Rule:
    name = f"accuracy on {evalset}"
    if launch is None or now is None:
        return Rule(name, NOT_CHECKED, None, allowed, how)
    drop = round(launch - now, 6)
    text = f"{now:.4f} now vs {launch:.4f} at launch ({how}): drop {drop:.4f}"
    if drop > allowed:
        return Rule(name, FIRES, drop, allowed, f"{text} > {allowed:g} allowed for a {risk}-risk model")
    return Rule(name, HOLDS, drop, allowed, f"{text} <= {allowed:g} allowed for a {risk}-risk model")


def data_rule(then: dict | None, now: dict | None, threshold: float, path: str | None) -> Rule:
    name = "new labelled data"
    if then is None or path is None:
        return Rule(name, NOT_CHECKED, None, threshold, "prod's lineage names no dataset (git model add --dataset)")
    unit = "lines" if isinstance(then.get("lines"), int) and then["lines"] > 0 else \
        "bytes" if isinstance(then.get("bytes"), int) and then["bytes"] > 0 else None
    if unit is None:
        return Rule(name, NOT_CHECKED, None, threshold,
                    f"prod's lineage records no size of {path} (recorded by `git model add` from now on)")
    if now is None or not isinstance(now.get(unit), int):
        return Rule(name, NOT_CHECKED, None, threshold, f"{path} is not in the workspace to measure")
    growth = round((now[unit] - then[unit]) / then[unit], 6)
    def amount(n: int) -> str:
        return f"{n:,} {unit if n != 1 else unit[:-1]}"

    text = f"{path}: {amount(now[unit])} now vs {amount(then[unit])} at training ({growth:+.1%})"
    return Rule(name, FIRES if growth >= threshold else HOLDS, growth, threshold,
                f"{text} {'>=' if growth >= threshold else '<'} {threshold:.0%}")


def review_rules(summary: dict | None, floor: float, category_floor: float, min_reviews: int) -> list[Rule]:
    if summary is None:
        return [Rule("human review", NOT_CHECKED, None, floor, "no review imported (git model sample, then "
                                                              "git model review import)")]
    if not summary.get("n"):
        return [Rule("human review", NOT_CHECKED, None, floor, f"prod's outputs not reviewed: {summary.get('note')}")]
    means = summary["metrics"]["mean"]
    worst = min(means, key=means.get)
    n = summary.get("n")
    overall = Rule("human review", FIRES if means[worst] < floor else HOLDS, means[worst], floor,
                   f"{worst} mean {means[worst]:.2f} over {n} reviews "
                   f"{'<' if means[worst] < floor else '>='} floor {floor:g}")
    failing = []
    for category, entry in summary["metrics"]["by_category"].items():
        if entry.get("n", 0) < min_reviews:
            continue
        for criterion, value in entry.items():
            if criterion != "n" and value < category_floor:
                failing.append((value, category, criterion, entry["n"]))
    if failing:
        value, category, criterion, k = min(failing)
        cat = Rule("a category failing", FIRES, value, category_floor,
                   f"category {category}: {criterion} mean {value:.2f} over {k} reviews < {category_floor:g}")
    else:
        cat = Rule("a category failing", HOLDS, None, category_floor,
                   f"no category with {min_reviews}+ reviews below {category_floor:g} on any criterion")
    return [overall, cat]


def events_rule(events: list[dict], trained_at: str | None, source: str) -> Rule:
    name = "domain shift"
    if not events:
        return Rule(name, HOLDS, None, None, "no event in retrain.events")
    if trained_at is None:
        return Rule(name, NOT_CHECKED, None, None, "prod's training date is unknown")
    trained_day = trained_at[:10]
    after = [e for e in events if e["date"] > trained_day]
    if after:
        shown = "; ".join(f"{e['date']}: {e['what']}" for e in after)
        return Rule(name, FIRES, len(after), trained_day, f"after training ({trained_day}, {source}): {shown}")
    return Rule(name, HOLDS, 0, trained_day, f"every event predates training ({trained_day}, {source})")


# -- gathering the figures -------------------------------------------------------------------------------


def _accuracy_now(root: Path, doc: dict, evalset: str) -> tuple[float | None, str]:
    """prod's accuracy on the eval set as the workspace tracks it now, and how it was found."""
    from gitmodel import dvcyaml, evaluate

    launch = doc.get("metrics", {}).get("accuracy")
    rel = doc["evalset"].get("path") or f"{dvcyaml.EVALSETS_DIR}/{evalset}.jsonl"
    tracked = store.tracked(root, root / rel)
    if tracked is None or tracked.md5 is None:
        return None, f"{rel} is no longer tracked"
    if tracked.md5 == doc["evalset"]["md5"]:
        return launch, "eval set unchanged since the release"
    recorded = dict(doc, evalset={"name": doc["evalset"]["name"], "path": rel, "md5": tracked.md5})
    rerun = evaluate.rerun_stored(root, recorded, doc["model"], model_what="prod's checkpoint")
    return rerun.doc["metrics"].get("accuracy"), "eval set changed since the release: prod re-evaluated on it"


def _prod_review(root: Path, model: str, rev) -> dict | None:
    """The human review of prod's checkpoint as review_rules reads it: the newest first (the workspace's
    review file, then the one at prod's release); None when no review file is there."""
    from gitmodel import reviewmetric, revisions

    found = reviewmetric.sides(root, model, [rev], look_in=[revisions.Revision(revisions.WORKSPACE, None)])
    if found is None:
        return None
    side = found[0]
    return {"n": side.n, "note": side.note, "source": side.source,
            "metrics": {"mean": side.mean, "by_category": side.by_category}}


def retrain_check(model: str, logs: Sequence[str] = (), *, evalset: str | None = None, since=None, until=None,
                  strict: bool = False, start: Path | None = None) -> RetrainResult:
    from gitmodel import dvcyaml, lineage, monitoring, results, revisions

    root = project.open_root(start)
    settings = params.retrain_params(root)
    tier = params.tier(root, model)
    rev = revisions.resolve(root, f"{model}#prod")
    label = rev.label
    result = RetrainResult(model, label, tier)

    if logs:
        measured = monitoring.drift(model, logs, since=since, until=until, strict=strict, start=root, record=False)
        psis = {s.signal: s.psi.value for s in measured.signals if s.signal.startswith("input.")}
        result.rules.append(input_drift_rule(psis, settings["input_psi"]))
    else:
        result.rules.append(Rule("input drift", NOT_CHECKED, None, settings["input_psi"], "no --log given"))

    found = results.results_at(root, rev, model=model, evalset=evalset)
    if evalset is not None and not found:
        raise GitModelError(f"{label} holds no result of '{model}' on '{evalset}'",
                            hint="name an eval set prod was released with")
    for res in found:
        now, how = _accuracy_now(root, res.doc, res.evalset)
        result.rules.append(accuracy_rule(res.evalset, res.doc.get("metrics", {}).get("accuracy"), now,
                                          tier["accuracy_drop"], tier["risk"], how))

    rel = dvcyaml.model_path(model)
    out = store.tracked_at(root, rev.commit, [rel]).get(rel)
    lin = ((out.meta if out else {}) or {}).get("lineage") or {}
    dataset = lin.get("dataset") if isinstance(lin.get("dataset"), dict) else None
    path = dataset.get("path") if dataset else None
    now_size = lineage.dataset_size(root / path) if path and (root / path).exists() else None
    result.rules.append(data_rule(dataset, now_size, settings["data_growth"], path))

    result.rules += review_rules(_prod_review(root, model, rev), settings["review_floor"],
                                 settings["category_floor"], settings["min_category_reviews"])

    trained_at, source = lin.get("trained_at"), "trained_at in its lineage"
    if trained_at is None and rev.release is not None:
        trained_at = datetime.fromtimestamp(rev.release.time, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
        source = "its release time: its lineage has no trained_at"
    result.rules.append(events_rule(settings["events"], trained_at, source))
    monitoring.record_run(root, model, "retrain-check", result.verdict)
    return result

