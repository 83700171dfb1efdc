"""params.yaml `eval:` for prompts, chat, stop sequences, scorers and slices: defaults, per eval set
overrides, and every bad value named."""
from __future__ import annotations

import pytest

from gitmodel import evalprep, params
from gitmodel.errors import InvalidParams, InvalidPrompt
from gitmodel.evaluate import recorded_params


def write(tmp_path, text):
    (tmp_path / "params.yaml").write_text(text)
    return tmp_path


def test_defaults_keep_the_input_as_the_prompt(tmp_path):
    p = params.eval_params(tmp_path)
    assert (p["prompt"], p["chat"], p["stop"], p["scorer"], p["slices"], p["min_slice"], p["parallel"]) == \
        ("{input}", "none", [], "exact", [], 20, 1)
    assert "prompt_md5" not in recorded_params(p)   # the plain prompt records nothing new


def test_an_eval_set_overrides_its_own_settings(tmp_path):
    write(tmp_path, 'eval:\n  prompt: "Q: {input}"\n  stop: ["\\n"]\n  evalsets:\n'
                    '    support:\n      prompt: "Ticket: {input}\\nReply:"\n      scorer: contains\n')
    base, support = params.eval_params(tmp_path), params.eval_params(tmp_path, "support")
    assert base["prompt"] == "Q: {input}" and base["scorer"] == "exact"
    assert support["prompt"] == "Ticket: {input}\nReply:" and support["scorer"] == "contains"
    assert support["stop"] == ["\n"]
    assert params.eval_params(tmp_path, "other")["prompt"] == "Q: {input}"
    # the prompt is recorded with its md5: another prompt is another result
    assert recorded_params(support)["prompt_md5"] != recorded_params(base)["prompt_md5"]


def test_every_new_setting_that_changes_outputs_is_a_result_key():
    for key in ("prompt", "fewshot", "chat", "system", "stop", "scorer", "json_schema", "number_tolerance",
                "slices", "min_slice", "parallel"):
        assert key in params.RESULT_KEYS
    assert set(params.PER_EVALSET_KEYS) <= set(params.EVAL_DEFAULTS)


def test_a_setting_that_cannot_be_per_eval_set_is_named(tmp_path):
    write(tmp_path, "eval:\n  evalsets:\n    support:\n      n_ctx: 99\n")
    with pytest.raises(InvalidParams, match=r"eval.evalsets.support.n_ctx cannot be set per eval set"):
        params.eval_params(tmp_path)


@pytest.mark.parametrize("value", ['"\\n"', "[1, 2]", '[""]', "{a: b}"])
def test_stop_that_is_not_a_list_of_strings_is_refused(tmp_path, value):
    write(tmp_path, f"eval:\n  stop: {value}\n")
    with pytest.raises(InvalidParams) as err:
        params.eval_params(tmp_path)
    assert "eval.stop must be a list of non-empty strings" in err.value.message


def test_per_eval_set_stop_is_named_by_its_own_key(tmp_path):
    write(tmp_path, "eval:\n  evalsets:\n    qa:\n      stop: 3\n")
    with pytest.raises(InvalidParams, match=r"eval.evalsets.qa.stop must be a list of non-empty strings, got 3"):
        params.eval_params(tmp_path, "qa")


def test_slices_must_be_field_names(tmp_path):
    write(tmp_path, "eval:\n  slices: region\n")
    with pytest.raises(InvalidParams, match=r"eval.slices must be a list of non-empty strings, got 'region'"):
        params.eval_params(tmp_path)


def test_min_slice_must_be_positive(tmp_path):
    write(tmp_path, "eval:\n  min_slice: 0\n")
    with pytest.raises(InvalidParams, match=r"eval.min_slice must be an integer of at least 1, got 0"):
        params.eval_params(tmp_path)


def test_system_without_a_chat_template_is_refused(tmp_path):
    write(tmp_path, "eval:\n  system: Be kind.\n")
    p = params.eval_params(tmp_path)
    with pytest.raises(InvalidPrompt, match="eval.system is set but eval.chat is none"):
        evalprep.resolve(tmp_path, p, runner="python", model_file=None, model_rel=None, max_line_bytes=1000)


def test_chat_template_file_that_does_not_exist_is_named(tmp_path):
    write(tmp_path, "eval:\n  chat: templates/chat.jinja\n")
    p = params.eval_params(tmp_path)
    with pytest.raises(InvalidPrompt, match="the chat template file templates/chat.jinja does not exist"):
        evalprep.resolve(tmp_path, p, runner="llama", model_file=None, model_rel=None, max_line_bytes=1000)


def test_the_template_written_by_init_parses_to_the_defaults(tmp_path):
    write(tmp_path, params.PARAMS_TEMPLATE)
    p = params.eval_params(tmp_path)
    assert {k: p[k] for k in params.EVAL_DEFAULTS} == params.EVAL_DEFAULTS


# ----------------------------------------------------------------------------- per model


def test_a_model_overrides_its_own_settings_and_the_eval_set_wins_over_it(tmp_path):
    write(tmp_path, "eval:\n  max_tokens: 64\n  prompt: \"{input}\"\n"
                    "  models:\n    chat: {max_tokens: 256, n_ctx: 4096, prompt: \"Chat: {input}\"}\n"
                    "  evalsets:\n    qa: {max_tokens: 16}\n")
    assert params.eval_params(tmp_path)["max_tokens"] == 64
    chat = params.eval_params(tmp_path, model="chat")
    assert (chat["max_tokens"], chat["n_ctx"], chat["prompt"]) == (256, 4096, "Chat: {input}")
    # eval < eval.models.<m> < eval.evalsets.<e>: the eval set's own setting is the most specific
    pair = params.eval_params(tmp_path, "qa", model="chat")
    assert (pair["max_tokens"], pair["n_ctx"], pair["prompt"]) == (16, 4096, "Chat: {input}")
    other = params.eval_params(tmp_path, "qa", model="other")
    assert (other["max_tokens"], other["n_ctx"], other["prompt"]) == (16, 2048, "{input}")
    # the merged settings are what a result records
    assert recorded_params(pair)["n_ctx"] == 4096 and recorded_params(pair)["max_tokens"] == 16
    assert params.for_pair(params.eval_params(tmp_path), "chat", "qa") == pair


def test_an_unknown_per_model_key_is_named_with_did_you_mean(tmp_path):
    write(tmp_path, "eval:\n  models:\n    chat: {max_tokns: 9}\n")
    with pytest.raises(InvalidParams) as err:
        params.eval_params(tmp_path)
    assert str(tmp_path / "params.yaml") in err.value.message
    assert "eval.models.chat.max_tokns cannot be set per model; did you mean 'max_tokens'?" in err.value.message


def test_a_setting_that_is_not_the_models_is_named(tmp_path):
    write(tmp_path, "eval:\n  models:\n    chat: {temprature: 0.5}\n")
    with pytest.raises(InvalidParams, match=r"eval.models.chat.temprature cannot be set per model") as err:
        params.eval_params(tmp_path, model="chat")
    assert "n_ctx" in err.value.hint


def test_a_models_section_that_is_not_a_mapping_is_refused(tmp_path):
    write(tmp_path, "eval:\n  models: [chat]\n")
    with pytest.raises(InvalidParams, match=r"params.yaml: eval.models must be a mapping"):
        params.eval_params(tmp_path)


def test_one_models_settings_that_are_not_a_mapping_are_refused(tmp_path):
    write(tmp_path, "eval:\n  models:\n    chat: 4096\n")
    with pytest.raises(InvalidParams, match=r"params.yaml: eval.models.chat must be a mapping of settings, got 4096"):
        params.eval_params(tmp_path)


def test_a_per_model_value_of_the_wrong_type_or_range_is_named_by_its_own_key(tmp_path):
    write(tmp_path, "eval:\n  models:\n    chat: {n_ctx: big}\n")
    with pytest.raises(InvalidParams, match=r"eval.models.chat.n_ctx must be int, got 'big'"):
        params.eval_params(tmp_path, model="chat")
    write(tmp_path, "eval:\n  models:\n    chat: {n_ctx: 0}\n")
    with pytest.raises(InvalidParams, match=r"eval.models.chat.n_ctx must be at least 1, got 0"):
        params.eval_params(tmp_path, model="chat")
    write(tmp_path, "eval:\n  models:\n    chat: {stop: 3}\n")
    with pytest.raises(InvalidParams, match=r"eval.models.chat.stop must be a list of non-empty strings"):
        params.eval_params(tmp_path, model="chat")


def test_an_override_for_a_model_dvc_yaml_does_not_track_is_refused(tmp_path):
    from gitmodel.errors import ModelNotFound

    (tmp_path / "dvc.yaml").write_text("artifacts:\n  chat:\n    path: models/chat.gguf\n    type: model\n")
    write(tmp_path, "eval:\n  models:\n    chat: {}\n    chta: {max_tokens: 9}\n")
    with pytest.raises(ModelNotFound) as err:
        params.eval_params(tmp_path)
    assert f"{tmp_path / 'params.yaml'}: eval.models.chta" in err.value.message
    assert "did you mean 'chat'?" in err.value.message and "remove eval.models.chta" in err.value.hint
    # an empty section overrides nothing: left over from a model no longer tracked, it is harmless
    write(tmp_path, "eval:\n  models:\n    chat: {max_tokens: 9}\n    gone: {}\n")
    assert params.eval_params(tmp_path, model="chat")["max_tokens"] == 9
