"""`python -m gitmodel.demo log`: a production log of a demo checkpoint really answering generated traffic."""
from __future__ import annotations

import statistics
import subprocess
import sys

from gitmodel import prodlog
from gitmodel.demo import traffic


def test_requests_are_drawn_like_the_eval_set_unless_shifted():
    from gitmodel.demo import reviews

    usual = traffic.requests(2000, seed=1)
    assert usual == traffic.requests(2000, seed=1) and usual != traffic.requests(2000, seed=2)
    eval_words = statistics.mean(len(r["input"].split()) for r in reviews())
    assert abs(statistics.mean(len(r["input"].split()) for r in usual) - eval_words) < 0.5
    shifted = traffic.requests(2000, shift=1.0, seed=1)
    assert statistics.mean(len(r["input"].split()) for r in shifted) > 2 * eval_words
    assert sum(r["category"] == "delivery" for r in shifted) > 0.4 * len(shifted)


def test_negated_traffic_is_single_negated_reviews_of_the_usual_categories_and_length():
    from gitmodel.demo import lexicon, reviews

    assert traffic.requests(500, seed=1, negated=0.0) == traffic.requests(500, seed=1)   # a seed's traffic kept
    heavy = traffic.requests(2000, seed=1, negated=0.5)
    negated = [r for r in heavy if r["input"] in lexicon.candidates(r["category"], "negated", "negative")]
    usual = sum(count for slice_, _, count in lexicon.PLAN if slice_ == "negated") / sum(c for *_, c in lexicon.PLAN)
    assert abs(len(negated) / len(heavy) - (0.5 + 0.5 * usual)) < 0.04     # half, plus the usual share of the rest
    assert {r["category"] for r in negated} == set(lexicon.CATEGORIES)
    eval_chars = statistics.mean(len(r["input"]) for r in reviews())
    assert abs(statistics.mean(len(r["input"]) for r in heavy) - eval_chars) < 0.15 * eval_chars


def test_the_module_writes_day_files_a_strict_reader_accepts(demo_dir, tmp_path):
    out = tmp_path / "logs"
    proc = subprocess.run([sys.executable, "-m", "gitmodel.demo", "log", str(out), "--model-file",
                           str(demo_dir / "sentiment-v2.gguf"), "--n", "40", "--days", "2", "--version", "v1.2.0"],
                          capture_output=True, text=True, check=True)
    files = sorted(out.glob("sentiment-*.jsonl"))
    assert [str(f) for f in files] == proc.stdout.split() and 2 <= len(files) <= 3
    records = list(prodlog.read([out], strict=True))
    assert len(records) == 40
    assert {r["label"] for r in records} <= {"positive", "negative"} and all(0.5 <= r["confidence"] <= 1 for r in records)
    assert {r["version"] for r in records} == {"v1.2.0"} and all(r["category"] for r in records)


def test_bad_arguments_are_usage_errors(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "gitmodel.demo", "log", str(tmp_path / "x"), "--model-file", "m.gguf",
                           "--n", "10", "--shift", "1.5"], capture_output=True, text=True)
    assert proc.returncode == 2 and "--shift and --negated within [0, 1]" in proc.stderr and not (tmp_path / "x").exists()
    proc = subprocess.run([sys.executable, "-m", "gitmodel.demo", "log", str(tmp_path / "x"), "--model-file", "m.gguf",
                           "--n", "10", "--negated", "-0.1"], capture_output=True, text=True)
    assert proc.returncode == 2 and "--negated within [0, 1]" in proc.stderr and not (tmp_path / "x").exists()
