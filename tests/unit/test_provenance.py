"""The staleness judgement and the unverified-result check, on plain data."""
from __future__ import annotations

from dataclasses import dataclass

import pytest

from gitmodel import params, provenance
from gitmodel.errors import UnverifiedResult

MD5, OTHER = "a" * 32, "b" * 32


def doc(**changes) -> dict:
    base = {"model": {"name": "m", "path": "models/m.gguf", "md5": MD5},
            "evalset": {"name": "e", "path": "evalsets/e.jsonl", "md5": MD5},
            "params": {k: params.EVAL_DEFAULTS[k] for k in params.RESULT_KEYS},
            "runner": {"name": "llama", "version": "1"}}
    base.update(changes)
    return base


def current(**changes) -> dict:
    return dict({k: params.EVAL_DEFAULTS[k] for k in params.RESULT_KEYS}, **changes)


def texts(reasons) -> list[str]:
    return [str(r) for r in reasons]


def test_current_result_has_no_reason():
    assert provenance.staleness(doc(), model_md5=MD5, evalset_md5=MD5, params=current()) == []


def test_every_recorded_param_is_compared_with_its_reason():
    reasons = provenance.staleness(doc(), model_md5=MD5, evalset_md5=MD5, params=current(n_threads=2, seed=3))
    assert [r.kind for r in reasons] == [provenance.PARAMS]
    assert reasons[0].changes == ("eval.seed: recorded 0, now 3", "eval.n_threads: recorded 1, now 2")
    assert texts(reasons) == ["eval params changed since: eval.seed: recorded 0, now 3; eval.n_threads: recorded 1, now 2"]


def test_a_key_an_older_file_did_not_record_stands_for_its_default():
    old = doc()
    del old["params"]["n_gpu_layers"]
    assert provenance.staleness(old, model_md5=MD5, evalset_md5=MD5, params=current()) == []
    assert texts(provenance.staleness(old, model_md5=MD5, evalset_md5=MD5, params=current(n_gpu_layers=8))) == [
        "eval params changed since: eval.n_gpu_layers: recorded 0, now 8"]


def test_openai_settings_are_compared_for_openai_results_only():
    served = doc(params=dict(current(runner="openai"), openai={"model": None, "scoring": "echo", "top_logprobs": 20}))
    now = dict(current(runner="openai"), openai={"model": None, "scoring": "top_logprobs", "top_logprobs": 20})
    assert texts(provenance.staleness(served, model_md5=MD5, evalset_md5=MD5, params=now)) == [
        'eval params changed since: eval.openai.scoring: recorded "echo", now "top_logprobs"']
    assert provenance.staleness(doc(), model_md5=MD5, evalset_md5=MD5, params=dict(current(), openai={})) == []


def test_model_and_evalset_md5():
    reasons = provenance.staleness(doc(), model_md5=OTHER, evalset_md5=OTHER)
    assert [(r.kind, r.recorded, r.current, r.path) for r in reasons] == [
        (provenance.MODEL, MD5, OTHER, "models/m.gguf"), (provenance.EVALSET, MD5, OTHER, "evalsets/e.jsonl")]
    assert texts(reasons) == [f"it measured model md5 {MD5}, but models/m.gguf at workspace is md5 {OTHER}",
                              f"it measured eval set md5 {MD5}, but evalsets/e.jsonl at workspace is md5 {OTHER}"]
    assert provenance.describe("metrics/m/e.json", "HEAD", reasons[:1]) == (
        f"metrics/m/e.json at HEAD is stale: it measured model md5 {MD5}, but models/m.gguf at workspace is md5 {OTHER}")


def test_what_the_revision_does_not_track_is_not_compared():
    # a served model names no tracked file; a file the revision does not track has nothing to differ from
    assert provenance.staleness(doc(), model_md5=None, evalset_md5=None) == []


def test_served_timings_at_another_concurrency_are_stale():
    served = doc(timing_conditions={"runner": "openai", "concurrency": 1, "n_threads": None, "machine": "x"})
    assert texts(provenance.staleness(served, model_md5=MD5, evalset_md5=MD5, params=current(), concurrency=8)) == [
        "timings were measured at eval.openai.concurrency 1, now 8"]


@dataclass
class Result:
    path: str
    doc: dict


def test_unverified_results_are_refused_naming_them():
    results = [Result("metrics/m/a.json", doc()),
               Result("metrics/m/b.json", doc(runner={"name": "openai", "version": "x"},
                                              verification={"status": "unverified", "detail": "no md5"}))]
    with pytest.raises(UnverifiedResult) as info:
        provenance.check_verified(results, None, "release m@v1.0.0")
    assert str(info.value) == "release m@v1.0.0 refused: unverified results: metrics/m/b.json (no md5)"
    assert provenance.check_verified(results, "drill", "release m@v1.0.0") == ["metrics/m/b.json"]
    assert provenance.check_verified(results[:1], None, "release m@v1.0.0") == []


@pytest.mark.parametrize("rationale", ["", "   ", "why\x01"])
def test_accept_unverified_needs_a_plain_rationale(rationale):
    with pytest.raises(UnverifiedResult) as info:
        provenance.check_verified([], rationale, "release m@v1.0.0")
    assert "needs a rationale" in str(info.value)


def test_results_of_older_files_default_by_runner():
    assert not provenance.is_unverified(doc())
    assert provenance.is_unverified(doc(runner={"name": "openai", "version": "x"}))
    assert not provenance.is_unverified(doc(runner={"name": "openai", "version": "x"},
                                            verification={"status": "reproduced", "detail": "verify"}))
