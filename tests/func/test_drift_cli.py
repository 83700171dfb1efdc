"""`git model drift` on real demo logs: a demo checkpoint run by llama.cpp on generated traffic,
against the eval outputs stored at a release (the `released` repository: v1.0.0, v1.2.0, v1.10.0 hold
the demo v1, v2, v3 weights)."""
from __future__ import annotations

import gzip
import json
import shutil
from pathlib import Path

import pytest

from gitmodel import prodlog
from tests.conftest import snapshot_tree
from tests.func.monitorkit import demo_logs  # noqa: F401  (a fixture)
from tests.func.stagekit import gm

V2 = "sentiment@v1.2.0"


def drift_json(*args: str):
    result = gm("drift", "sentiment", *args, "--json")
    return result, (json.loads(result.stdout) if result.stdout.strip() else None)


def by_signal(doc: dict) -> dict[str, dict]:
    return {s["signal"]: s for s in doc["signals"]}


def test_traffic_like_the_eval_set_is_stable(released, demo_logs):
    result, doc = drift_json("--log", str(demo_logs["v2"]), "--baseline", V2)
    assert result.exit_code == 0, result.stderr
    assert doc["verdict"] == "stable" and doc["current"]["n"] == 600 and doc["baseline"]["n"] == 400
    assert all(s["band"] == "stable" for s in doc["signals"] if not s["informational"])
    assert doc["smoothing"] == "additive smoothing: +0.5 per bin"


def test_shifted_inputs_alert_on_input_length(released, demo_logs):
    result = gm("drift", "sentiment", "--log", str(demo_logs["shifted"]), "--baseline", V2)
    assert result.exit_code == 1, result.stderr
    rows = {line.split()[0]: line.split() for line in result.stdout.splitlines() if line.startswith(("input.", "output."))}
    assert rows["input.chars"][2] == "alert" and rows["input.words"][2] == "alert"
    assert "Verdict: ALERT: input.chars, input.words" in result.stdout


def test_v3_outputs_against_the_v2_baseline_alert_on_the_outputs(released, demo_logs):
    result, doc = drift_json("--log", str(demo_logs["v3"]), "--baseline", V2)
    assert result.exit_code == 1
    signals = by_signal(doc)
    assert signals["output.confidence"]["band"] == "alert"
    # v3's bias toward positive shows in the label shares, on inputs that did not move
    assert signals["output.label"]["current"]["shares"]["positive"] > \
        signals["output.label"]["baseline"]["shares"]["positive"] + 0.04
    assert signals["input.chars"]["band"] == "stable"
    assert signals["output.version"]["informational"] and signals["output.version"]["current"]["unseen"] == {"v1.10.0": 600}


def test_v3_outputs_against_the_v2_baseline_alert_on_the_label_distribution(released, demo_logs):
    """A week heavy on complaints put as negations ("the soup was not good"): v3's bias answers them
    "positive" where v2 said "negative", and the label shares leave the baseline's. v2 answering the very
    same requests keeps its label shares: the alert is v3's doing, not the traffic's."""
    v3_lines = list(prodlog.read([demo_logs["v3-negated"]]))
    v2_lines = list(prodlog.read([demo_logs["v2-negated"]]))
    assert [r["input"] for r in v3_lines] == [r["input"] for r in v2_lines]

    result, doc = drift_json("--log", str(demo_logs["v3-negated"]), "--baseline", V2)
    v3 = by_signal(doc)["output.label"]
    assert result.exit_code == 1 and doc["verdict"] == "alert"
    assert v3["band"] == "alert" and v3["psi"] >= v3["alert"], v3
    assert v3["current"]["shares"]["positive"] > v3["baseline"]["shares"]["positive"] + 0.15

    result, doc = drift_json("--log", str(demo_logs["v2-negated"]), "--baseline", V2)
    v2 = by_signal(doc)["output.label"]
    assert result.exit_code in (0, 1) and v2["band"] == "stable" and v2["psi"] < v2["watch"], v2
    # what v3 changed on these requests: negated reviews v2 calls negative and v3 positive
    flipped = [a["input"] for a, b in zip(v2_lines, v3_lines) if (a["label"], b["label"]) == ("negative", "positive")]
    assert len(flipped) > 100 and all(" not " in text for text in flipped)


def test_the_default_baseline_is_prod_at_its_release(in_prod, demo_logs):
    result, doc = drift_json("--log", str(demo_logs["v3"]))
    assert result.exit_code == 0, result.stderr
    assert doc["baseline"]["label"] == "sentiment#prod (sentiment@v1.10.0): outputs on sentiment"
    assert doc["verdict"] == "stable"


def test_a_window_and_a_version_filter_the_records(released, demo_logs):
    files = sorted(demo_logs["v2"].glob("*.jsonl"))
    day = files[1].name.split("-", 1)[1][:10]
    _, whole = drift_json("--log", str(demo_logs["v2"]), "--baseline", V2, "--fail-on", "alert")
    _, one_day = drift_json("--log", str(demo_logs["v2"]), "--baseline", V2, "--since", day,
                            "--until", f"{day}T23:59:59.999Z")
    lines = sum(1 for _ in open(files[1]))
    assert one_day["current"]["n"] == lines < whole["current"]["n"]
    assert one_day["window"]["since"] == f"{day}T00:00:00.000Z"
    result, _ = drift_json("--log", str(demo_logs["v2"]), "--baseline", V2, "--version", "v9.9.9")
    assert result.exit_code == 3 and "no record of model 'sentiment' version v9.9.9" in result.stderr


def test_a_production_window_as_the_baseline(released, demo_logs):
    result, doc = drift_json("--log", str(demo_logs["v2"]), "--baseline-log", str(demo_logs["v2"]))
    assert result.exit_code == 0 and all(s["psi"] in (0, None) for s in doc["signals"])
    result, doc = drift_json("--log", str(demo_logs["shifted"]), "--baseline-log", str(demo_logs["v2"]))
    assert result.exit_code == 1 and by_signal(doc)["input.words"]["band"] == "alert"
    assert doc["baseline"]["label"].startswith("production window ")


def test_saved_day_profiles_add_up_to_the_logs(released, demo_logs, tmp_path):
    files = sorted(demo_logs["v2"].glob("*.jsonl"))
    saved = []
    for i, f in enumerate(files):
        out = tmp_path / f"day{i}.json"
        result, _ = drift_json("--log", str(f), "--baseline", V2, "--save-profile", str(out))
        assert result.exit_code in (0, 1) and out.is_file()   # a day of ~85 records is noisy
        saved += ["--profile", str(out)]
    _, from_logs = drift_json("--log", str(demo_logs["v2"]), "--baseline", V2)
    _, from_profiles = drift_json(*saved, "--baseline", V2)
    assert from_profiles["signals"] == from_logs["signals"]
    assert from_profiles["current"]["n"] == 600


def test_gzip_and_globs_are_read(released, demo_logs, tmp_path):
    for f in demo_logs["v2"].glob("*.jsonl"):
        with gzip.open(tmp_path / (f.name + ".gz"), "wb") as out:
            out.write(f.read_bytes())
    _, plain = drift_json("--log", str(demo_logs["v2"]), "--baseline", V2)
    _, zipped = drift_json("--log", str(tmp_path / "*.jsonl.gz"), "--baseline", V2)
    assert zipped["signals"] == plain["signals"]


def test_markdown_carries_the_marker_and_the_table(released, demo_logs):
    result = gm("drift", "sentiment", "--log", str(demo_logs["shifted"]), "--baseline", V2, "--md")
    assert result.exit_code == 1
    assert result.stdout.startswith("<!-- git-model-drift -->\n### Drift of `sentiment`: alert")
    assert "| `input.chars` |" in result.stdout


# -- bad input: a clear error, exit 3 (2 for usage), nothing written --------------------------------------


def one_day(demo_logs, tmp_path) -> Path:
    path = tmp_path / "sentiment-day.jsonl"
    shutil.copy(sorted(demo_logs["v2"].glob("*.jsonl"))[0], path)
    return path


def refused(repo: Path, *args: str, code: int = 3):
    before = snapshot_tree(repo)
    result = gm("drift", "sentiment", *args)
    assert result.exit_code == code, (result.stdout, result.stderr)
    assert snapshot_tree(repo) == before
    return result.stderr


def test_malformed_and_truncated_lines_are_counted_named_and_strict_refuses(released, demo_logs, tmp_path):
    path = one_day(demo_logs, tmp_path)
    good = path.read_text()
    path.write_text("not json\n" + good + '{"id": "cut", "ts": "2026-11-01T00:00:0')
    result, doc = drift_json("--log", str(path), "--baseline", V2)
    assert result.exit_code == 0
    assert doc["read"]["malformed"] == 2
    assert doc["read"]["bad"] == [f"{path}:1: not JSON", f"{path}:{len(good.splitlines()) + 2}: cut off (no end of line)"]
    assert "2 malformed log line(s) left out" in gm("drift", "sentiment", "--log", str(path), "--baseline", V2).stderr
    assert f"Error: {path}:1: not JSON" in refused(released, "--log", str(path), "--baseline", V2, "--strict")


def test_an_empty_log_is_an_error(released, tmp_path):
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    assert "no record of model 'sentiment'; 0 line(s) in 1 file(s)" in refused(released, "--log", str(empty),
                                                                                 "--baseline", V2)


def test_a_gzip_cut_off_is_named_and_strict_refuses(released, demo_logs, tmp_path):
    data = gzip.compress(one_day(demo_logs, tmp_path).read_bytes())
    cut = tmp_path / "cut.jsonl.gz"
    cut.write_bytes(data[: len(data) // 2])
    result, doc = drift_json("--log", str(cut), "--baseline", V2)
    assert doc["read"]["malformed"] == 1 and "the gzip stream is cut off" in doc["read"]["bad"][0]
    assert "the gzip stream is cut off or damaged" in refused(released, "--log", str(cut), "--baseline", V2, "--strict")


def test_a_log_of_another_model_is_refused_naming_it(released, demo_logs, tmp_path):
    path = one_day(demo_logs, tmp_path)
    path.write_text(path.read_text().replace('"model":"sentiment"', '"model":"chat"'))
    message = refused(released, "--log", str(path), "--baseline", V2)
    assert "no record of model 'sentiment'" in message and "records of other models: chat (" in message


@pytest.mark.parametrize("bad", ["NaN", "Infinity", "-Infinity", "1e999"])
def test_nan_and_infinite_confidences_are_malformed_lines(released, demo_logs, tmp_path, bad):
    path = one_day(demo_logs, tmp_path)
    lines = path.read_text().splitlines(keepends=True)
    record = json.loads(lines[0])
    lines[0] = json.dumps(record).replace(f'"confidence": {record["confidence"]}', f'"confidence": {bad}') + "\n"
    path.write_text("".join(lines))
    message = refused(released, "--log", str(path), "--baseline", V2, "--strict")
    assert f"{path}:1: confidence" in message and "is not a finite number" in message


@pytest.mark.parametrize("ts, problem", [("2999-01-01T00:00:00.000Z", "is in the future"),
                                         ("last tuesday", "is not an ISO 8601 time")])
def test_future_and_unparseable_timestamps_are_malformed_lines(released, demo_logs, tmp_path, ts, problem):
    path = one_day(demo_logs, tmp_path)
    lines = path.read_text().splitlines(keepends=True)
    record = json.loads(lines[2])
    record["ts"] = ts
    lines[2] = json.dumps(record) + "\n"
    path.write_text("".join(lines))
    result, doc = drift_json("--log", str(path), "--baseline", V2)
    assert doc["read"]["malformed"] == 1 and problem in doc["read"]["bad"][0]
    assert f"{path}:3: ts" in refused(released, "--log", str(path), "--baseline", V2, "--strict")


def test_since_after_until_is_a_usage_error(released, demo_logs):
    message = refused(released, "--log", str(demo_logs["v2"]), "--since", "2026-11-05", "--until", "2026-11-01",
                      code=2)
    assert "--since 2026-11-05T00:00:00+00:00 is not before --until 2026-11-01T00:00:00+00:00" in message


def test_a_profile_of_another_baseline_is_refused(released, demo_logs, tmp_path):
    saved = tmp_path / "week.json"
    assert gm("drift", "sentiment", "--log", str(demo_logs["v2"]), "--baseline", "sentiment@v1.0.0",
              "--save-profile", str(saved)).exit_code in (0, 1)
    message = refused(released, "--profile", str(saved), "--baseline", V2)
    assert f"{saved}: counts over other bins than the baseline (sentiment@v1.2.0" in message
    assert "made against another baseline (by sentiment@v1.0.0" in message


def test_save_profile_never_overwrites_a_file_git_does_not_hold(released, demo_logs):
    (released / "notes.json").write_text("mine\n")
    message = refused(released, "--log", str(demo_logs["v2"]), "--baseline", V2, "--save-profile", "notes.json")
    assert "notes.json exists and git does not hold it" in message
    assert (released / "notes.json").read_text() == "mine\n"


def test_workers_sets_the_processes_and_changes_no_figure(released, demo_logs):
    result = gm("drift", "sentiment", "--log", str(demo_logs["v2"]), "--baseline", V2, "--workers", "0")
    assert result.exit_code == 2 and "--workers" in result.stderr
    _, one = drift_json("--log", str(demo_logs["v2"]), "--baseline", V2, "--workers", "1")
    _, every = drift_json("--log", str(demo_logs["v2"]), "--baseline", V2)
    assert one == every and one["current"]["n"] == 600
