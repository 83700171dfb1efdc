"""Prompt templates, few-shot blocks and chat templates: rendered text, and every bad template refused."""
from __future__ import annotations

import pytest

from gitmodel import chattemplate, prompts
from gitmodel.chattemplate import ChatTemplate, ChatTemplateError
from gitmodel.errors import InvalidPrompt
from gitmodel.runners.base import Example
from tests.func.realmodel import GEMMA3_CHAT_TEMPLATE


def ex(id, input, **fields):
    return Example(id=id, input=input, expected=fields.get("expected"), line=3,
                   fields={"id": id, "input": input, **fields})


def test_template_fills_input_and_any_field_and_keeps_literal_braces():
    template = prompts.PromptTemplate.parse("Context: {context}\nQ: {input} {{json}}\nA:", "eval.prompt")
    assert template.fields == ("context", "input")
    out = template.render({"input": "Who?", "context": "Ada wrote it.", "n": 3}, "example 'e1'")
    assert out == "Context: Ada wrote it.\nQ: Who? {json}\nA:"


def test_non_text_fields_render_as_json():
    template = prompts.PromptTemplate.parse("{input} [{tags}]", "eval.prompt")
    assert template.render({"input": "x", "tags": ["a", "b"]}, "e") == 'x [["a", "b"]]'


def test_unknown_placeholder_names_template_field_and_example():
    prompting = prompts.Prompting(prompts.PromptTemplate.parse("Q: {question}\nA:", "params.yaml: eval.prompt"))
    with pytest.raises(InvalidPrompt) as err:
        prompting.apply([ex("e1", "hi")], "evalsets/qa.jsonl")
    assert err.value.message == ("params.yaml: eval.prompt: example 'e1' (evalsets/qa.jsonl:3) has no field "
                                 "'question' for the placeholder {question} (its fields: id, input)")


@pytest.mark.parametrize("text", ["Review: {input", "Review: input}", "{input}}"])
def test_unbalanced_braces_are_refused(text):
    with pytest.raises(InvalidPrompt) as err:
        prompts.PromptTemplate.parse(text, "params.yaml: eval.prompt")
    assert err.value.message.startswith("params.yaml: eval.prompt: ")
    assert "{{" in err.value.hint


@pytest.mark.parametrize("text", ["{input.__class__}", "{input[0]}", "{input!r}", "{input:>10}", "{}"])
def test_placeholders_read_fields_only(text):
    # attribute and index access would let a template reach into Python objects
    with pytest.raises(InvalidPrompt, match="is not a field name"):
        prompts.PromptTemplate.parse(text, "eval.prompt")


def test_identity_prompt_leaves_examples_alone():
    examples = [ex("e1", "hi")]
    prompting = prompts.Prompting(prompts.PromptTemplate.parse("{input}", "eval.prompt"))
    assert prompting.is_identity and prompting.apply(examples, "x")[0].prompt is None


def test_fewshot_block_comes_first_with_each_answer():
    template = prompts.PromptTemplate.parse("Review: {input}\nSentiment:", "eval.prompt")
    shots = [ex("s1", "great", expected="positive"), ex("s2", "awful", expected="negative")]
    block = prompts.fewshot_block(template, shots, "fewshot.jsonl", " ")
    prompting = prompts.Prompting(template, block)
    out = prompting.apply([ex("e1", "fine")], "evalsets/r.jsonl")[0]
    assert out.prompt == ("Review: great\nSentiment: positive\n\nReview: awful\nSentiment: negative\n\n"
                          "Review: fine\nSentiment:")
    assert out.text == out.prompt and out.input == "fine"


def test_fewshot_example_without_answer_is_refused():
    template = prompts.PromptTemplate.parse("{input}", "eval.prompt")
    with pytest.raises(InvalidPrompt, match=r"fewshot.jsonl:3: few-shot example 's1' has no 'expected'"):
        prompts.fewshot_block(template, [ex("s1", "x")], "fewshot.jsonl", " ")


def test_prompt_md5_changes_with_the_template():
    a = prompts.Prompting(prompts.PromptTemplate.parse("A {input}", "p"))
    b = prompts.Prompting(prompts.PromptTemplate.parse("B {input}", "p"))
    assert a.md5() != b.md5() and a.md5() == prompts.Prompting(prompts.PromptTemplate.parse("A {input}", "p")).md5()


def test_repo_file_refuses_paths_outside_the_repository(tmp_path):
    with pytest.raises(InvalidPrompt, match="outside the repository"):
        prompts.repo_file(tmp_path, "../secret.jsonl", "eval.fewshot")


# --------------------------------------------------------------------------- chat templates

def test_gemma_chat_template_renders_system_user_and_generation_prompt():
    template = ChatTemplate(GEMMA3_CHAT_TEMPLATE, "models/gemma.gguf: tokenizer.chat_template", "<bos>", "<eos>")
    text = template.render([{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi?"}])
    assert text == "<bos><start_of_turn>user\nBe brief.\n\nHi?<end_of_turn>\n<start_of_turn>model\n"


def test_prompting_renders_the_user_turn_through_the_chat_template():
    chat = ChatTemplate(GEMMA3_CHAT_TEMPLATE, "t", "<bos>")
    prompting = prompts.Prompting(prompts.PromptTemplate.parse("Q: {input}", "p"), chat=chat, system="S")
    out = prompting.apply([ex("e1", "2+2?")], "x")[0]
    assert out.prompt == "<bos><start_of_turn>user\nS\n\nQ: 2+2?<end_of_turn>\n<start_of_turn>model\n"
    assert out.messages is None   # a template rendered here: the runner gets the text


def test_chat_template_that_raises_names_the_model():
    template = ChatTemplate(GEMMA3_CHAT_TEMPLATE, "models/gemma.gguf: tokenizer.chat_template")
    with pytest.raises(ChatTemplateError) as err:
        template.render([{"role": "assistant", "content": "first"}])
    assert err.value.message.startswith("models/gemma.gguf: tokenizer.chat_template: the chat template failed to "
                                        "render: TemplateError: Conversation roles must alternate")


@pytest.mark.parametrize("source", [
    "{{ messages.__class__.__mro__[1].__subclasses__() }}",
    "{{ ''.__class__.__base__.__subclasses__() }}",
    "{{ cycler.__init__.__globals__.os.popen('id').read() }}",
    "{% set x = messages.append(1) %}{{ x }}",
])
def test_chat_template_reaching_outside_the_sandbox_is_refused(source):
    # CVE-2024-34359: a GGUF's template ran os.popen through an unsandboxed Jinja environment
    with pytest.raises(ChatTemplateError) as err:
        ChatTemplate(source, "models/evil.gguf: tokenizer.chat_template").render([{"role": "user", "content": "x"}])
    assert err.value.message.startswith("models/evil.gguf: tokenizer.chat_template: ")
    assert "sandbox" in err.value.message or "failed to render" in err.value.message


def test_chat_template_attribute_escape_is_a_sandbox_error():
    with pytest.raises(ChatTemplateError, match="tried to reach outside its sandbox"):
        ChatTemplate("{{ ''.__class__ }}", "m").render([])


def test_chat_template_that_does_not_parse_names_it():
    with pytest.raises(ChatTemplateError, match=r"^m: the chat template does not parse"):
        ChatTemplate("{% for m in messages %}", "m").render([])


def test_chat_template_md5_is_of_its_text():
    import hashlib

    assert ChatTemplate("abc", "m").md5 == hashlib.md5(b"abc").hexdigest()
    assert chattemplate.TEMPLATE_KEY == "tokenizer.chat_template"
