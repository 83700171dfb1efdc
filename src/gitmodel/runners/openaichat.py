"""The openai runner over ``/v1/chat/completions``: a served chat model, evaluated through the API it
is served with (``eval.chat: auto``), the server applying its own chat template to the messages.

Generation: ``messages`` at ``temperature`` and ``seed`` with ``max_tokens`` and ``stop``; the text is
``choices[0].message.content``. Classification: the chat API echoes no prompt, so labels can only be
scored from ``logprobs: true, top_logprobs: k`` of the first generated token (``scoring:
top_logprobs``): each label's score is the log-probability listed for ``label_prefix + label``.
A server that lists no log-probabilities cannot score labels, and says so.
"""
from __future__ import annotations

from typing import Any

from gitmodel.errors import RunnerError
from gitmodel.runners.base import Example, RunSettings

PATH = "/chat/completions"


def cannot_score_labels(url: str, example: Example) -> RunnerError:
    return RunnerError(f"{url}{PATH} cannot score the labels of example {example.id!r} with echo scoring: a chat "
                       "API does not echo the prompt's log-probabilities",
                       hint="set eval.openai.scoring: top_logprobs (each label read from the first answered "
                            "token's top log-probabilities), or eval.chat: none to score through /completions")


def body(example: Example, settings: RunSettings, top_logprobs: int) -> dict[str, Any]:
    out: dict[str, Any] = {"messages": list(example.messages or ()), "seed": settings.seed}
    if example.is_classification:
        out.update(temperature=0.0, max_tokens=1, logprobs=True, top_logprobs=top_logprobs)
    else:
        out.update(temperature=settings.temperature, max_tokens=settings.max_tokens)
        if settings.stop:
            out["stop"] = list(settings.stop)
    return out


def _where(url: str, example: Example) -> str:
    return f"{url}{PATH} answer for example {example.id!r}"


def generation(answer: dict, url: str, example: Example) -> tuple[str, int]:
    try:
        text = answer["choices"][0]["message"]["content"]
        tokens = answer["usage"]["completion_tokens"]
    except (KeyError, IndexError, TypeError):
        raise RunnerError(f"{_where(url, example)} has no `choices[0].message.content` or "
                          "`usage.completion_tokens`", hint="the server must answer in the chat completions format "
                                                            "and report `usage`") from None
    if not isinstance(text, str) or not isinstance(tokens, int):
        raise RunnerError(f"{_where(url, example)}: `choices[0].message.content` or `usage.completion_tokens` "
                          "has the wrong type")
    return text, tokens


def top_scores(answer: dict, url: str, example: Example, label_prefix: str) -> dict[str, float]:
    """Each label's log-probability among the first answered token's top log-probabilities."""
    try:
        logprobs = answer["choices"][0].get("logprobs")
    except (KeyError, IndexError, TypeError, AttributeError):
        raise RunnerError(f"{_where(url, example)} has no `choices[0]`") from None
    content = logprobs.get("content") if isinstance(logprobs, dict) else None
    if content is None:
        raise RunnerError(f"{_where(url, example)} lists no log-probabilities (`choices[0].logprobs.content`): "
                          "the labels cannot be scored over chat",
                          hint="use a server that returns logprobs for chat completions, or eval.chat: none")
    if content == []:
        return {}    # the answer ended at once: no position, no label within the top k
    top = content[0].get("top_logprobs") if isinstance(content[0], dict) else None
    if not isinstance(top, list):
        raise RunnerError(f"{_where(url, example)}: `logprobs.content[0].top_logprobs` is not a list")
    listed = {item.get("token"): item.get("logprob") for item in top if isinstance(item, dict)}
    scores = {}
    for label in example.labels or ():
        value = listed.get(label_prefix + label)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            scores[label] = float(value)
    return scores
