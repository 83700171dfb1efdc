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
