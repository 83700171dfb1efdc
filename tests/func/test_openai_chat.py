"""The openai runner speaking /v1/chat/completions (eval.chat: auto), and stop sequences over HTTP,
against a server we control."""
from __future__ import annotations

import pytest

from gitmodel.errors import RunnerError
from gitmodel.runners.base import Example, RunSettings
from gitmodel.runners.openai import OpenAIRunner
from tests.func.test_openai_runner import FakeServer

MESSAGES = ({"role": "system", "content": "Answer in one word."}, {"role": "user", "content": "Capital of France?"})


@pytest.fixture(autouse=True)
def no_proxy(monkeypatch):
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)


@pytest.fixture
def fake():
    server = FakeServer()
    server.thread.start()
    yield server
    server.server.shutdown()
    server.server.server_close()


def chat_answer(content, tokens=3, top=None):
    choice = {"index": 0, "message": {"role": "assistant", "content": content}}
    if top is not None:
        choice["logprobs"] = {"content": [{"token": "x", "logprob": -0.1,
                                           "top_logprobs": [{"token": t, "logprob": lp} for t, lp in top]}]}
    return {"model": "fake-model", "choices": [choice], "usage": {"completion_tokens": tokens}}


def test_generation_goes_to_chat_completions_with_messages_and_stop(fake):
    fake.script = [(200, chat_answer("Paris\nQuestion: and Spain?", tokens=7))]
    example = Example(id="g1", input="France", prompt="Capital of France?", messages=MESSAGES)
    [prediction] = OpenAIRunner(fake.url, RunSettings(stop=("\n",), max_tokens=16), backoff=0.0).predict([example])
    post = fake.posts[0]
    assert post["path"] == "/v1/chat/completions"
    assert post["body"]["messages"] == list(MESSAGES)
    assert post["body"]["stop"] == ["\n"] and post["body"]["max_tokens"] == 16
    # cut here too: a server that ignores `stop` gives the same output as one that honours it
    assert (prediction.output, prediction.output_tokens) == ("Paris", 7)


def test_completions_get_the_rendered_prompt_and_stop(fake):
    fake.script = [(200, {"model": "fake-model", "choices": [{"text": " Paris\nQ:", "index": 0}],
                          "usage": {"completion_tokens": 4}})]
    example = Example(id="g1", input="France", prompt="Q: Capital of France?\nA:")
    [prediction] = OpenAIRunner(fake.url, RunSettings(stop=("\n",)), backoff=0.0).predict([example])
    assert fake.posts[0]["path"] == "/v1/completions"
    assert fake.posts[0]["body"]["prompt"] == "Q: Capital of France?\nA:" and fake.posts[0]["body"]["stop"] == ["\n"]
    assert prediction.output == " Paris"


def test_labels_over_chat_are_read_from_top_logprobs(fake):
    fake.script = [(200, chat_answer("positive", 1, top=[("positive", -0.2), ("negative", -1.9), ("meh", -3.0)]))]
    example = Example(id="c1", input="great", labels=("positive", "negative"), messages=MESSAGES)
    run = OpenAIRunner(fake.url, RunSettings(label_prefix=""), backoff=0.0, scoring="top_logprobs", top_logprobs=5)
    [prediction] = run.predict([example])
    body = fake.posts[0]["body"]
    assert fake.posts[0]["path"] == "/v1/chat/completions"
    assert (body["logprobs"], body["top_logprobs"], body["max_tokens"]) == (True, 5, 1)
    assert prediction.label == "positive" and prediction.scores == {"positive": -0.2, "negative": -1.9}


def test_labels_over_chat_with_echo_scoring_are_refused_before_any_request(fake):
    example = Example(id="c1", input="great", labels=("positive", "negative"), messages=MESSAGES)
    with pytest.raises(RunnerError) as err:
        OpenAIRunner(fake.url, RunSettings(), backoff=0.0).predict([example])
    assert "cannot score the labels of example 'c1' with echo scoring" in err.value.message
    assert "top_logprobs" in err.value.hint
    assert fake.posts == []


def test_a_chat_server_without_logprobs_says_it_cannot_score_labels(fake):
    fake.script = [(200, chat_answer("positive", 1))]
    example = Example(id="c1", input="great", labels=("positive", "negative"), messages=MESSAGES)
    with pytest.raises(RunnerError) as err:
        OpenAIRunner(fake.url, RunSettings(), backoff=0.0, scoring="top_logprobs").predict([example])
    assert err.value.message.endswith("lists no log-probabilities (`choices[0].logprobs.content`): "
                                      "the labels cannot be scored over chat")


def test_a_chat_answer_without_content_is_named(fake):
    fake.script = [(200, {"model": "fake-model", "choices": [{"index": 0}], "usage": {"completion_tokens": 1}})]
    example = Example(id="g1", input="x", messages=MESSAGES)
    with pytest.raises(RunnerError, match=r"chat/completions answer for example 'g1' has no `choices\[0\].message"):
        OpenAIRunner(fake.url, RunSettings(), backoff=0.0).predict([example])
