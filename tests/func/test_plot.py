"""`git model plot` on a real repository with three releases and real metrics: the data, the
Vega-Lite spec (x = version in SemVer order) and the files vl-convert renders."""
from __future__ import annotations

import json
import struct
import sys

import pytest

from gitmodel import plot
from gitmodel.cli import cli
from gitmodel.errors import GitModelError
from tests.conftest import RELEASES, git


def accuracy_at(repo, version: str, key: str = "accuracy"):
    value = json.loads(git(repo, "show", f"sentiment@{version}:metrics/sentiment/sentiment.json"))["metrics"]
    for part in key.split("."):
        value = value[part]
    return value


def test_rows_hold_each_release_in_semver_order(released):
    rows, versions, keys = plot.plot_data(released, "sentiment")
    assert versions == list(RELEASES)                  # v1.10.0 last: SemVer, not text order
    assert keys == ["accuracy"]
    assert [(r["version"], r["evalset"], r["metric"], r["value"]) for r in rows] == [
        (v, "sentiment", "accuracy", accuracy_at(released, v)) for v in RELEASES]
    assert rows[0]["tag"] == "sentiment@v1.0.0" and rows[0]["panel"] == "accuracy (higher is better)"


def test_dotted_keys_and_several_metrics(released):
    rows, _, keys = plot.plot_data(released, "sentiment", ["accuracy", "labels.positive.fpr", "accuracy"])
    assert keys == ["accuracy", "labels.positive.fpr"]
    fpr = [r["value"] for r in rows if r["metric"] == "labels.positive.fpr"]
    assert fpr == [accuracy_at(released, v, "labels.positive.fpr") for v in RELEASES]
    assert {r["panel"] for r in rows if r["metric"] == "labels.positive.fpr"} == {
        "labels.positive.fpr (lower is better)"}


def test_spec_sorts_the_ordinal_x_axis_by_semver(released):
    rows, versions, keys = plot.plot_data(released, "sentiment")
    spec = plot.vega_lite_spec("sentiment", rows, versions, keys)
    x = spec["spec"]["encoding"]["x"]
    assert x["type"] == "ordinal" and x["sort"] == list(RELEASES) and x["scale"]["domain"] == list(RELEASES)
    assert spec["$schema"].endswith("vega-lite/v5.json")
    assert spec["data"]["values"] == rows
    assert spec["resolve"]["scale"]["y"] == "independent"


def test_stages_appear_in_the_tooltip_data(released):
    git(released, "tag", "-a", "sentiment#prod#1", "-m", "Assigning stage prod to artifact sentiment version v1.2.0",
        "sentiment@v1.2.0^{commit}")
    rows, _, _ = plot.plot_data(released, "sentiment")
    assert [r["stages"] for r in rows] == ["-", "prod", "-"]


def test_deregistered_releases_are_left_out(released):
    git(released, "tag", "-a", "sentiment@v1.2.0!#1", "-m", "Deregistering artifact sentiment version v1.2.0",
        "sentiment@v1.2.0^{commit}")
    _, versions, _ = plot.plot_data(released, "sentiment")
    assert versions == ["v1.0.0", "v1.10.0"]


def test_png(released, tmp_path):
    out = tmp_path / "history.png"
    result = plot.plot(released, "sentiment", ["accuracy", "labels.positive.fpr"], output=out)
    data = out.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", data[16:24])
    assert width > 600 and height > 700                # two panels, rendered at scale 2
    assert (result.releases, result.first, result.last) == (3, "v1.0.0", "v1.10.0")


def test_svg_shows_every_version_in_semver_order(released, tmp_path):
    out = tmp_path / "history.svg"
    plot.plot(released, "sentiment", output=out)
    svg = out.read_text()
    assert svg.startswith("<svg")
    positions = [svg.index(f">{v}<") for v in RELEASES]
    assert positions == sorted(positions)              # axis labels drawn left to right in SemVer order
    assert f">{accuracy_at(released, 'v1.2.0'):.3f}<" in svg


def test_html_is_self_contained(released, tmp_path):
    out = tmp_path / "history.html"
    plot.plot(released, "sentiment", output=out)
    html = out.read_text()
    assert html.lstrip().lower().startswith("<!doctype html>")
    assert "<script src=" not in html.replace(" ", "") and "cdn.jsdelivr" not in html
    assert "vegaEmbed" in html and len(html) > 200_000       # the Vega libraries are inlined
    assert '"v1.10.0"' in html


def test_json_writes_the_spec(released, tmp_path):
    out = tmp_path / "history.json"
    result = plot.plot(released, "sentiment", output=out)
    assert json.loads(out.read_text()) == result.spec


def test_default_output_name(released):
    result = plot.plot(released, "sentiment")
    assert result.path.name == "sentiment-metrics.html" and (released / "sentiment-metrics.html").is_file()


def test_missing_vl_convert_names_the_extra(released, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "vl_convert", None)      # as if not installed
    with pytest.raises(GitModelError) as e:
        plot.plot(released, "sentiment", output=tmp_path / "x.png")
    assert e.value.message == ("writing x.png needs vl-convert-python (it renders Vega-Lite offline, without a "
                               "browser), which is not installed")
    assert e.value.hint == "pip install 'git-model[plot]'; or write the Vega-Lite spec with -o x.json"
    assert not (tmp_path / "x.png").exists()
    plot.plot(released, "sentiment", output=tmp_path / "x.json")          # the spec needs nothing
    assert (tmp_path / "x.json").is_file()


@pytest.mark.parametrize("args, message, hint", [
    ({"metric_keys": ["acuracy"]}, "metric 'acuracy' is in no release of sentiment; did you mean 'accuracy'?",
     "metrics of sentiment: accuracy, accuracy_by_category.delivery, accuracy_by_category.food, "
     "accuracy_by_category.price, accuracy_by_category.service, calibration.brier, calibration.ece, "
     "confidence.mean, confidence.p10, confidence.p50, expected_distribution.negative, "
     "expected_distribution.positive ..."),
    ({"metric_keys": ["labels..fpr"]}, "invalid metric key 'labels..fpr': use a dotted key like accuracy or "
     "labels.positive.fpr", None),
    ({"evalsets": ["sentiments"]}, "no release of sentiment has results on eval set 'sentiments'; "
     "did you mean 'sentiment'?", None),
    ({"output": "chart.pdf"}, "cannot write chart.pdf: the file name must end in .html, .png, .svg, .json", None),
])
def test_plot_errors(released, args, message, hint):
    with pytest.raises(GitModelError) as e:
        plot.plot(released, "sentiment", **args)
    assert e.value.message == message
    assert e.value.hint == hint


def test_unknown_model_and_model_without_releases(released, registry):
    with pytest.raises(GitModelError) as e:
        plot.plot(released, "sentimnt")
    assert e.value.message.startswith("unknown model 'sentimnt'") and e.value.hint == "did you mean 'sentiment'?"
    with pytest.raises(GitModelError) as e:
        plot.plot(registry, "sentiment-v1")
    assert e.value.message == "model 'sentiment-v1' has no releases to plot"


def test_plot_command(released, runner):
    result = runner.invoke(cli, ["plot", "sentiment", "-m", "accuracy", "-m", "label_psi", "-o", "h.svg"])
    assert result.exit_code == 0, result.stderr
    assert result.stdout == ("Wrote h.svg: accuracy, label_psi across 3 releases of sentiment "
                             "(v1.0.0 .. v1.10.0)\n")
    assert (released / "h.svg").read_text().startswith("<svg")


@pytest.mark.parametrize("output", ["/nonexistent/dir/x.json", "typo-folder/chart.html"])
def test_plot_refuses_a_missing_parent_folder_instead_of_creating_it(released, runner, output):
    from pathlib import Path

    from tests.conftest import snapshot_tree

    before = snapshot_tree(released)
    result = runner.invoke(cli, ["plot", "sentiment", "-o", output])
    assert result.exit_code == 3, (result.stdout, result.stderr)
    parent = Path(output).parent
    assert result.stderr == (f"Error: cannot write {output}: the folder {parent} does not exist\n"
                             f"  hint: create it first (mkdir -p {parent}) or pick another -o\n")
    assert not parent.exists()
    assert snapshot_tree(released) == before
