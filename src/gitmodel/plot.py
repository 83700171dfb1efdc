"""``git model plot``: metrics across the releases of a model, as a Vega-Lite chart.

The data and the spec are built here without any plotting library. Rendering
uses vl-convert-python (the ``plot`` extra), which runs Vega in-process: PNG
and SVG without a browser, and HTML with the Vega, Vega-Lite and Vega-Embed
libraries inlined, so the page opens offline. (dvc-render's HTML would load
those libraries from a CDN, so it is not used.)
"""
from __future__ import annotations

import json
import shlex
from dataclasses import dataclass
from pathlib import Path

from gitmodel import gitrepo, history, known, refs, registry as registry_mod, results as results_mod
from gitmodel.errors import GitModelError
from gitmodel.metricdiff import is_number
from gitmodel.metricspecs import iter_leaves
from gitmodel.fsutil import atomic_write
from gitmodel.revisions import Revision

DEFAULT_METRICS = ("accuracy",)
FORMATS = (".html", ".png", ".svg", ".json")
INSTALL_HINT = "pip install 'git-model[plot]'"
PANEL_HEIGHT = 180


class PlotError(GitModelError):
    pass


@dataclass
class PlotResult:
    path: Path
    metrics: list[str]
    releases: int
    first: str
    last: str
    spec: dict


def _direction(key: str) -> str | None:
    from gitmodel import metricspecs

    try:
        return str(metricspecs.spec(key).direction)
    except KeyError:
        return None


def _panel_title(key: str) -> str:
    direction = _direction(key)
    return {"higher": f"{key} (higher is better)", "lower": f"{key} (lower is better)",
            "stable": f"{key} (should stay stable)"}.get(direction, key)


def plot_data(root: Path, model: str, metric_keys: list[str] | None = None,
              evalsets: list[str] | None = None) -> tuple[list[dict], list[str], list[str]]:
    """(rows, versions in SemVer order, metric keys): one row per release x eval set x metric."""
    refs.check_name(model)
    for e in evalsets or []:
        refs.check_name(e, "eval set name")
    metric_keys = list(dict.fromkeys(metric_keys or DEFAULT_METRICS))
    for key in metric_keys:
        if not key or any(not part for part in key.split(".")) or any(ord(c) < 32 for c in key):
            raise PlotError(f"invalid metric key {key!r}: use a dotted key like accuracy or labels.positive.fpr")
    reg = registry_mod.load(root)
    releases = history.releases_for(root, reg, model, "plot", PlotError)
    holders: dict[refs.Version, list[str]] = {}
    for stage, event in reg.holders(model).items():
        if event.version is not None:
            holders.setdefault(event.version, []).append(stage)
    revs = [Revision.of(r) for r in releases]
    with gitrepo.ObjectReader(root) as reader:
        results = results_mod.results_at_many(root, revs, model=model, reader=reader)
    seen_evalsets = sorted({res.evalset for found in results for res in found})
    for e in evalsets or []:
        if e not in seen_evalsets:
            raise PlotError(f"no release of {model} has results on eval set '{e}'"
                            + (known.suggestion(e, seen_evalsets) or f"; eval sets: {', '.join(seen_evalsets) or 'none'}"))
    rows = []
    for release, found in zip(releases, results):
        for res in found:
            if evalsets and res.evalset not in evalsets:
                continue
            for key in metric_keys:
                value = history.metric_value(res.doc["metrics"], key)
                if value is None:
                    continue
                rows.append({"version": str(release.version), "metric": key, "panel": _panel_title(key),
                             "evalset": res.evalset, "value": value, "tag": release.tag,
                             "commit": release.commit[:7], "date": history.iso_date(release.time)[:10],
                             "stages": ", ".join(sorted(holders.get(release.version, []))) or "-"})
    missing = [k for k in metric_keys if not any(row["metric"] == k for row in rows)]
    if missing:
        available = sorted({k for found in results for res in found for k, v in iter_leaves(res.doc["metrics"])
                            if is_number(v)})
        raise PlotError(f"metric '{missing[0]}' is in no release of {model}" + known.suggestion(missing[0], available),
                        hint=f"metrics of {model}: {', '.join(available[:12])}{' ...' if len(available) > 12 else ''}")
    return rows, [str(r.version) for r in releases], metric_keys


def vega_lite_spec(model: str, rows: list[dict], versions: list[str], metric_keys: list[str]) -> dict:
    """A Vega-Lite v5 spec: one panel per metric (own y scale), x = version as an ordinal axis in SemVer order."""
    panels = list(dict.fromkeys(_panel_title(k) for k in metric_keys))
    width = min(max(48 * len(versions), 360), 1100)
    tooltip = [{"field": "version", "title": "version"}, {"field": "evalset", "title": "eval set"},
               {"field": "metric"}, {"field": "value", "format": ".4f"}, {"field": "stages"},
               {"field": "date"}, {"field": "commit"}]
    many = len(versions) > 100         # hundreds of releases: thin marks, no tick per version
    point = 60 if len(versions) <= 30 else 25 if not many else 6
    layers = [{"mark": {"type": "line", "strokeWidth": 1 if many else 2}},
              {"mark": {"type": "point", "filled": True, "size": point}, "encoding": {"tooltip": tooltip}}]
    if len(versions) <= 12:   # values on the points while they fit; a white halo keeps the line off them
        label = {"type": "text", "dy": -12, "fontSize": 11}
        text = {"text": {"field": "value", "format": ".3f"}}
        layers.append({"mark": {**label, "stroke": "white", "strokeWidth": 4, "strokeJoin": "round"},
                       "encoding": {**text, "color": {"value": "white"}}})
        layers.append({"mark": label, "encoding": text})
    return {
        "$schema": "https://vega.github.io/schema/vega-lite/v5.json",
        "description": f"Metrics of {model} across its releases, in SemVer order (git model plot).",
        "title": {"text": f"{model}: metrics across releases",
                  "subtitle": f"{len(versions)} release{'s' if len(versions) != 1 else ''}, "
                              f"{versions[0]} .. {versions[-1]} (SemVer order)",
                  "anchor": "start"},
        "data": {"values": rows},
        "facet": {"row": {"field": "panel", "type": "nominal", "sort": panels, "title": None,
                          "header": {"labelAngle": 0, "labelOrient": "top", "labelAnchor": "start",
                                     "labelFontSize": 12, "labelFontWeight": "bold"}}},
        "spec": {
            "width": width, "height": PANEL_HEIGHT,
            "encoding": {
                "x": {"field": "version", "type": "ordinal", "sort": versions, "title": "version",
                      "scale": {"domain": versions},
                      "axis": {"labelAngle": 0 if len(versions) <= 12 else -45, "labelOverlap": "greedy",
                               "ticks": len(versions) <= 60}},
                "y": {"field": "value", "type": "quantitative", "title": None, "scale": {"zero": False}},
                "color": {"field": "evalset", "type": "nominal", "title": "eval set"},
            },
            "layer": layers,
        },
        "resolve": {"scale": {"y": "independent"}},
        "config": {"view": {"stroke": "#ddd"}, "font": "sans-serif"},
    }


def render(spec: dict, path: Path) -> None:
    """Write ``spec`` to ``path`` as .json (the spec), .html, .png or .svg (rendered by vl-convert)."""
    suffix = path.suffix.lower()
    if suffix not in FORMATS:
        raise PlotError(f"cannot write {path.name}: the file name must end in {', '.join(FORMATS)}")
    if suffix == ".json":
        atomic_write(path, json.dumps(spec, indent=2) + "\n")
        return
    try:
        import vl_convert
    except ImportError:
        raise PlotError(f"writing {path.name} needs vl-convert-python (it renders Vega-Lite offline, "
                        f"without a browser), which is not installed",
                        hint=f"{INSTALL_HINT}; or write the Vega-Lite spec with -o {path.stem}.json") from None
    if suffix == ".png":
        data = vl_convert.vegalite_to_png(spec, scale=2)
    elif suffix == ".svg":
        data = vl_convert.vegalite_to_svg(spec)
    else:
        data = vl_convert.vegalite_to_html(spec, bundle=True)
    atomic_write(path, data)


def plot(root: Path, model: str, metric_keys: list[str] | None = None, evalsets: list[str] | None = None,
         output: str | Path | None = None) -> PlotResult:
    """Build the chart of ``metric_keys`` (default: accuracy) across the releases of ``model`` and write it."""
    path = Path(output) if output else Path(f"{model}-metrics.html")
    if path.is_dir():
        raise PlotError(f"{path} is a folder: give a file name ending in {', '.join(FORMATS)}")
    if not path.parent.is_dir():
        # a typo in a folder name must not become a new folder
        raise PlotError(f"cannot write {path}: the folder {path.parent} does not exist",
                        hint=f"create it first (mkdir -p {shlex.quote(str(path.parent))}) or pick another -o")
    rows, versions, keys = plot_data(Path(root), model, metric_keys, evalsets)
    spec = vega_lite_spec(model, rows, versions, keys)
    render(spec, path)
    return PlotResult(path, keys, len(versions), versions[0], versions[-1], spec)
