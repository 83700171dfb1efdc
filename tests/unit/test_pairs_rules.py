"""The pairing rules and the eval stage's shape, pure: who joins what, stage keys, what a pair
depends on in params.yaml, and dvc.lock read back."""
from __future__ import annotations

import pytest
from ruamel.yaml import YAML

from gitmodel import dvcyaml, pairdeps, pairs, params
from gitmodel.errors import DvcError


def test_a_new_evalset_without_for_joins_every_model():
    new, joined = pairs.plan_evalset([("a", "x")], ["a", "b"], "smoke", [])
    assert new == [("a", "x"), ("a", "smoke"), ("b", "smoke")] and joined == ["a", "b"]


def test_for_adds_to_an_evalsets_pairs_and_never_removes_one():
    new, joined = pairs.plan_evalset([("a", "x")], ["a", "b"], "x", ["b", "b"])
    assert new == [("a", "x"), ("b", "x")] and joined == ["b"]


def test_an_evalset_added_again_without_for_keeps_its_pairs():
    new, joined = pairs.plan_evalset([("a", "x"), ("b", "z")], ["a", "b"], "x", [])
    assert new == [("a", "x"), ("b", "z")] and joined == []


def test_a_new_model_joins_the_evalsets_every_other_model_has():
    declared = [("a", "x"), ("a", "smoke"), ("b", "z"), ("b", "smoke")]
    new, evalsets = pairs.plan_model(declared, ["smoke", "x", "z"], "c", [])
    assert evalsets == ["smoke"] and new[-1] == ("c", "smoke")


def test_the_first_model_joins_every_tracked_evalset_and_a_known_one_keeps_its_pairs():
    assert pairs.plan_model([], ["x", "y"], "a", [])[1] == ["x", "y"]
    assert pairs.plan_model([("a", "x"), ("b", "y")], ["x", "y"], "a", [])[1] == ["x"]
    assert pairs.plan_model([("a", "x")], ["x", "y"], "a", ["y"])[1] == ["x", "y"]


def test_pair_keys_are_the_matrix_names_and_a_taken_one_gets_a_dot():
    assert dvcyaml.pair_key("a-b", "c", {}) == "a-b-c"
    assert dvcyaml.pair_key("a", "b-c", {"a-b-c": None}) == "a.b-c"


def load(text):
    return YAML().load(text)


def test_with_pairs_writes_a_foreach_and_pairs_of_reads_it_back():
    data = load(dvcyaml.template())
    dvcyaml.with_pairs(data, [("a-b", "c"), ("a", "b-c")], "dvc.yaml")
    reread = load(dvcyaml.dump(data))
    assert dict(reread["stages"]["eval"]["foreach"]) == {"a-b-c": {"model": "a-b", "evalset": "c"},
                                                         "a.b-c": {"model": "a", "evalset": "b-c"}}
    assert dvcyaml.pairs_of(reread["stages"]["eval"], "dvc.yaml") == [("a-b", "c"), ("a", "b-c")]


def test_a_matrix_reads_as_every_model_on_every_evalset_and_moves_to_a_foreach():
    data = load("stages:\n  eval:\n    matrix:\n      model: [a, b]\n      evalset: [x]\n"
                "    cmd: git model eval ${item.model} --evalset ${item.evalset}\n    params: [eval]\n")
    stage = data["stages"]["eval"]
    assert dvcyaml.pairs_of(stage, "dvc.yaml") == [("a", "x"), ("b", "x")]
    dvcyaml.with_pairs(data, dvcyaml.pairs_of(stage, "dvc.yaml"), "dvc.yaml")
    assert "matrix" not in data["stages"]["eval"] and list(data["stages"]["eval"]["foreach"]) == ["a-x", "b-x"]
    assert "eval" not in data["stages"]["eval"]["do"]["params"]


@pytest.mark.parametrize("item", ["a", "{model: a}", "{model: a, evalset: 3}"])
def test_an_entry_that_is_not_a_pair_is_named(item):
    data = load(dvcyaml.template().replace("foreach: {}", f"foreach:\n      a-x: {item}"))
    with pytest.raises(DvcError, match=r"dvc.yaml: stages.eval.foreach.a-x is not a pair"):
        dvcyaml.pairs_of(data["stages"]["eval"], "dvc.yaml")


def test_a_users_own_eval_stage_is_refused():
    data = load("stages:\n  eval:\n    cmd: python evaluate.py\n")
    with pytest.raises(DvcError, match="stages.eval is not git-model's eval stage"):
        dvcyaml.eval_stage(data, "dvc.yaml")


def test_stage_params_follow_result_keys_and_leave_out_what_cannot_change_an_output(monkeypatch):
    keys = dvcyaml.stage_params()
    assert [k for k in keys if k.startswith("eval.openai.")] == [f"eval.openai.{k}" for k in params.OPENAI_RESULT_KEYS]
    for never in ("eval", "eval.openai.timeout", "eval.openai.retries", "eval.openai.concurrency",
                  "eval.openai.api_key_env", "eval.max_line_bytes"):
        assert never not in keys
    assert keys[-2:] == ["eval.models.${item.model}", "eval.evalsets.${item.evalset}"]
    monkeypatch.setattr(params, "RESULT_KEYS", params.RESULT_KEYS + ("prompt",))
    assert "eval.prompt" in dvcyaml.stage_params()


def test_missing_keys_are_written_with_their_defaults_keeping_comments(tmp_path):
    (tmp_path / "params.yaml").write_text("eval:\n  seed: 3   # mine\n  evalsets:\n    x: {prompt: hi}\n")
    text = pairdeps.with_keys(tmp_path, ["x", "y"], ["a"])
    data = YAML(typ="safe").load(text)
    assert "seed: 3   # mine" in text
    assert data["eval"]["seed"] == 3 and data["eval"]["temperature"] == params.EVAL_DEFAULTS["temperature"]
    assert data["eval"]["evalsets"] == {"x": {"prompt": "hi"}, "y": {}}
    assert data["eval"]["models"] == {"a": {}}
    assert data["eval"]["openai"]["model"] is None and "model: null" in text
    assert pairdeps.missing_keys(data, pairdeps.keys_for("a", "y")) == []
    (tmp_path / "params.yaml").write_text(text)
    assert pairdeps.with_keys(tmp_path, ["x", "y"], ["a"]) is None


def test_lock_param_changes_are_what_dvc_status_reports():
    recorded = pairdeps.lock_params(
        "schema: '2.0'\nstages:\n  eval@a-x:\n    params:\n      params.yaml:\n        eval.seed: 0\n"
        "        eval.evalsets.x: {}\n  eval@b-z:\n    params:\n      params.yaml:\n        eval.seed: 0\n", "dvc.lock")
    current = {"eval": {"seed": 0, "openai": {"timeout": 5}, "evalsets": {"x": {"prompt": "p"}}}}
    keys = {("a", "x"): "a-x", ("b", "z"): "b-z", ("c", "x"): "c-x"}
    assert pairdeps.lock_param_changes(recorded, list(keys), keys, current) == {
        ("a", "x"): ['eval.evalsets.x: recorded {}, now {"prompt": "p"}']}
    # metrics written since the entry (by `git model eval`, with the params of now) are not its outputs
    recorded["eval@a-x"]["outs"] = {"metrics/a/x.json": "0" * 32}
    assert pairdeps.lock_param_changes(recorded, list(keys), keys, current, {("a", "x"): "1" * 32}) == {}
    assert pairdeps.lock_param_changes(recorded, list(keys), keys, current, {("a", "x"): "0" * 32}) != {}


def test_a_long_pair_stays_on_its_line_when_pairs_are_rewritten():
    long = "a-model-with-a-rather-long-name-v12"
    data = load("stages: {}\n")
    text = dvcyaml.dump(dvcyaml.with_pairs(data, [(long, "an-eval-set-with-a-long-name-too")], "dvc.yaml"))
    assert f"  {long}-an-eval-set-with-a-long-name-too: {{model: {long}, evalset: an-eval-set-with-a-long-name-too}}\n" \
        in text
