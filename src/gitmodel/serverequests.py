"""The OpenAI-compatible requests `git model serve` takes, checked, and its answers and errors: pure.

``/v1/completions`` takes ``prompt``; ``/v1/chat/completions`` takes ``messages``. Both take
``max_tokens``, ``temperature``, ``seed``, ``stop``, ``user``, ``model`` and ``stream``; other fields
are ignored, as OpenAI-compatible servers do. A field of the wrong type, an empty prompt, a
``max_tokens`` above the server's cap or an unknown model is an :class:`ApiError` with the status and
the body OpenAI's API gives (``{"error": {"message", "type", "param", "code"}}``).

The model sees what the eval runs gave it: the raw text, no chat template. A chat's prompt is its
messages' contents, one per line (a single user message is its content exactly, as an eval set
input); the production log's ``input`` is the last user message, before any of that.
"""
from __future__ import annotations

import json
import math
import time
import uuid
from dataclasses import dataclass, field

COMPLETIONS = "text_completion"
CHAT = "chat.completion"
MAX_STOP = 4          # OpenAI's limit on stop sequences
ROLES = ("system", "user", "assistant", "developer", "tool")


class ApiError(Exception):
    def __init__(self, status: int, message: str, type: str = "invalid_request_error", param: str | None = None,
                 code: str | None = None):
        super().__init__(message)
        self.status, self.message, self.type, self.param, self.code = status, message, type, param, code

    def body(self) -> dict:
        return {"error": {"message": self.message, "type": self.type, "param": self.param, "code": self.code}}


@dataclass
class Limits:
    max_body_bytes: int = 1 << 20
    max_tokens_cap: int = 512


@dataclass
class Defaults:
    """What a request that leaves a setting out gets: the version's eval-time settings."""

    max_tokens: int = 64
    temperature: float = 0.0
    seed: int = 0


@dataclass
class Parsed:
    kind: str                         # COMPLETIONS or CHAT
    prompt: str                       # what the model is given
    input: str                        # what the production log records: the user's content
    max_tokens: int | None            # None: the version's eval-time value
    temperature: float | None
    seed: int | None
    stop: list[str] = field(default_factory=list)
    user: str | None = None
    stream: bool = False


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def parse(kind: str, raw: bytes, model: str, limits: Limits) -> Parsed:
    """The request, checked; ApiError (a 4xx) on anything a client must fix."""
    if len(raw) > limits.max_body_bytes:
        raise ApiError(413, f"the request body has {len(raw)} bytes; this server takes at most "
                            f"{limits.max_body_bytes}", code="request_too_large")
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as e:
        raise ApiError(400, f"the request body is not valid JSON: {e}", code="invalid_json") from None
    if not isinstance(body, dict):
        raise ApiError(400, f"the request body must be a JSON object, not a JSON {type(body).__name__}",
                       code="invalid_json")
    asked = body.get("model")
    if asked is not None and asked != model:
        if not isinstance(asked, str):
            raise ApiError(400, "'model' must be a string", param="model", code="invalid_type")
        raise ApiError(404, f"the model '{asked}' does not exist; this server serves '{model}'",
                       param="model", code="model_not_found")
    if kind == CHAT:
        prompt, text_in = _messages(body.get("messages"))
    else:
        prompt = _prompt(body.get("prompt"))
        text_in = prompt
    max_tokens = body.get("max_tokens", body.get("max_completion_tokens"))
    if max_tokens is not None:
        if not _is_int(max_tokens) or max_tokens < 1:
            raise ApiError(400, f"'max_tokens' must be an integer of at least 1, not {max_tokens!r}",
                           param="max_tokens", code="invalid_value")
        if max_tokens > limits.max_tokens_cap:
            raise ApiError(400, f"'max_tokens' is {max_tokens}; this server generates at most "
                                f"{limits.max_tokens_cap} tokens per request", param="max_tokens",
                           code="max_tokens_too_large")
    temperature = body.get("temperature")
    if temperature is not None and (not _is_number(temperature) or not 0 <= temperature <= 2):
        raise ApiError(400, f"'temperature' must be a number from 0 to 2, not {temperature!r}",
                       param="temperature", code="invalid_value")
    seed = body.get("seed")
    if seed is not None and not _is_int(seed):
        raise ApiError(400, f"'seed' must be an integer, not {seed!r}", param="seed", code="invalid_type")
    stop = body.get("stop")
    if stop is None:
        stops = []
    elif isinstance(stop, str):
        stops = [stop]
    elif isinstance(stop, list) and all(isinstance(s, str) for s in stop) and len(stop) <= MAX_STOP:
        stops = list(stop)
    else:
        raise ApiError(400, f"'stop' must be a string or a list of at most {MAX_STOP} strings",
                       param="stop", code="invalid_type")
    user = body.get("user")
    if user is not None and not isinstance(user, str):
        raise ApiError(400, f"'user' must be a string, not {user!r}", param="user", code="invalid_type")
    stream = body.get("stream", False)
    if not isinstance(stream, bool):
        raise ApiError(400, f"'stream' must be true or false, not {stream!r}", param="stream", code="invalid_type")
    return Parsed(kind, prompt, text_in, max_tokens, temperature, seed, [s for s in stops if s], user or None,
                  stream)


def _prompt(prompt) -> str:
    if isinstance(prompt, list) and len(prompt) == 1:
        prompt = prompt[0]      # a batch of one, as OpenAI clients send it
    if prompt is None:
        raise ApiError(400, "'prompt' is required", param="prompt", code="missing_field")
    if not isinstance(prompt, str):
        raise ApiError(400, "'prompt' must be a string (batches of several prompts are not served)",
                       param="prompt", code="invalid_type")
    if not prompt.strip():
        raise ApiError(400, "'prompt' is empty", param="prompt", code="empty_prompt")
    return prompt


def _messages(messages) -> tuple[str, str]:
    if messages is None:
        raise ApiError(400, "'messages' is required", param="messages", code="missing_field")
    if not isinstance(messages, list) or not messages:
        raise ApiError(400, "'messages' must be a non-empty list of {role, content} objects",
                       param="messages", code="invalid_type")
    contents, last_user = [], None
    for i, message in enumerate(messages):
        if not isinstance(message, dict) or not isinstance(message.get("role"), str) \
                or not isinstance(message.get("content"), str):
            raise ApiError(400, f"messages[{i}] must be an object with a string 'role' and a string 'content'",
                           param=f"messages[{i}]", code="invalid_type")
        if message["role"] not in ROLES:
            raise ApiError(400, f"messages[{i}].role {message['role']!r} is not one of {', '.join(ROLES)}",
                           param=f"messages[{i}].role", code="invalid_value")
        contents.append(message["content"])
        if message["role"] == "user":
            last_user = message["content"]
    if last_user is None or not last_user.strip():
        raise ApiError(400, "the messages hold no user message with content", param="messages",
                       code="empty_prompt")
    return "\n".join(c for c in contents if c), last_user


def answer(parsed: Parsed, model: str, version: str, text: str, prompt_tokens: int, completion_tokens: int,
           finish_reason: str) -> dict:
    """The OpenAI response body; ``model`` names what answered, ``model@version``."""
    served = f"{model}@{version}"
    if parsed.kind == CHAT:
        choice = {"index": 0, "message": {"role": "assistant", "content": text}, "logprobs": None,
                  "finish_reason": finish_reason}
        prefix = "chatcmpl"
    else:
        choice = {"index": 0, "text": text, "logprobs": None, "finish_reason": finish_reason}
        prefix = "cmpl"
    return {"id": f"{prefix}-{uuid.uuid4().hex}", "object": parsed.kind, "created": int(time.time()),
            "model": served, "choices": [choice],
            "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                      "total_tokens": prompt_tokens + completion_tokens}}


def stream_chunks(body: dict) -> list[str]:
    """A whole answer as server-sent events: one chunk holding the text, then ``[DONE]``."""
    choice = body["choices"][0]
    if body["object"] == CHAT:
        delta = {"index": 0, "delta": {"role": "assistant", "content": choice["message"]["content"]},
                 "finish_reason": choice["finish_reason"]}
        chunk = {**body, "object": "chat.completion.chunk", "choices": [delta]}
    else:
        chunk = body
    return [f"data: {json.dumps(chunk, ensure_ascii=False)}\n\n", "data: [DONE]\n\n"]
