"""The ``openai`` runner: any OpenAI-compatible ``/v1/completions`` endpoint.

llama.cpp's server, vLLM, Ollama or a hosted API: how a team with a GPU fleet
evaluates at scale. Only the standard library speaks HTTP here.

Classification (``scoring="echo"``, the default): one request per label with
``prompt = input + label_prefix + label``, ``"echo": true, "logprobs": 1,
"max_tokens": 1``; the label's log-probability is the sum of the echoed
``token_logprobs`` of the tokens that cover ``label_prefix + label``. Those
tokens are found from the end of the prompt, not from ``len(input)``: the end
of the echoed prompt in ``text_offset`` coordinates is the end of the last
token minus what was generated, because llama_cpp.server's offsets count the
space its SentencePiece tokenizer puts in front of the text (one more than the
prompt's characters) while vLLM and OpenAI count the prompt's characters.
``max_tokens`` is 1, not 0, because llama_cpp.server reads 0 as "unlimited".

``scoring="top_logprobs"``: one request per example with ``prompt = input``,
``"logprobs": k, "max_tokens": 1`` (k: ``eval.openai.top_logprobs``), reading
each label's score from the ``top_logprobs`` of the first generated position
under the key ``label_prefix + label``. Only single-token labels; for servers
that cannot echo prompt log-probabilities. A label outside the top k has no
score: the answer is the best label within it, and an example with no label
within it (also when the greedy next token ends the text, so the server lists
no position at all) has no answer and counts as wrong. ``info()`` counts both.

Identity: the served model's id (``/models``) and, when the server gives it,
the md5 of the weights it serves (an ``X-Model-Md5`` header, or an ``md5``
field of the model's ``/models`` entry), so a result can be tied to a tracked
checkpoint. A server that changes model or md5 during a run fails the run.

Generation: ``prompt = input`` at ``temperature`` and ``seed`` with
``max_tokens`` and ``stop``; the text is ``choices[0].text`` (cut at the first stop
sequence here too, for servers that ignore ``stop``) and its length
``usage.completion_tokens``.

Examples that carry ``messages`` (``eval.chat: auto``) go to ``/chat/completions``
instead (:mod:`gitmodel.runners.openaichat`).
"""
from __future__ import annotations

import re
import time
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from typing import Any, Sequence

from gitmodel.errors import RunnerError
from gitmodel.runners import openaichat
from gitmodel.runners.base import Example, Prediction, Progress, RunSettings, classification, cut_at_stop
from gitmodel.runners.http import JSONClient

SCORINGS = ("echo", "top_logprobs")
DEFAULT_TOP_LOGPROBS = 20
MD5_HEADER = "X-Model-Md5"
_MD5 = re.compile(r"^[0-9a-f]{32}$")


class OpenAIRunner:
    """Scores and generates through an OpenAI-compatible completions endpoint."""

    name = "openai"

    def __init__(self, url: str, settings: RunSettings, model: str | None = None,
                 api_key_env: str = "OPENAI_API_KEY", concurrency: int = 4, timeout: float = 30.0,
                 retries: int = 3, backoff: float = 0.5, scoring: str | None = None,
                 top_logprobs: int | None = None):
        if not url.startswith(("http://", "https://")):
            raise RunnerError(f"openai runner: URL {url!r} does not start with http:// or https://",
                              hint="pass e.g. --url http://127.0.0.1:8080/v1")
        if concurrency < 1:
            raise RunnerError(f"openai runner: concurrency must be at least 1, got {concurrency}")
        if retries < 0:
            raise RunnerError(f"openai runner: retries must be 0 or more, got {retries}")
        self.url = url.rstrip("/")
        self.settings = settings
        self.model = model
        self.concurrency = concurrency
        self.http = JSONClient(url, api_key_env=api_key_env, timeout=timeout, retries=retries, backoff=backoff,
                               on_headers=lambda headers: self._note_md5(headers.get(MD5_HEADER)))
        self.scoring = scoring or settings.extra.get("scoring", "echo")
        if self.scoring not in SCORINGS:
            raise RunnerError(f"openai runner: unknown scoring {self.scoring!r}; choose one of: {', '.join(SCORINGS)}")
        self.top_logprobs = int(top_logprobs or settings.extra.get("top_logprobs", DEFAULT_TOP_LOGPROBS))
        if self.top_logprobs < 1:
            raise RunnerError(f"openai runner: top_logprobs must be at least 1, got {self.top_logprobs}",
                              hint="set eval.openai.top_logprobs in params.yaml (default 20)")
        self._server_model: str | None = None
        self._fingerprint: str | None = None
        self._listed_model: str | None = None            # the id /models gave
        self._served_md5s: set[str] = set()              # every md5 the server said it serves
        self._answer_models: set[str] = set()            # every model id the completions answers named
        self._identified = False
        self.outside_top_k = 0                           # examples with a label outside the top k
        self.unanswered = 0                              # examples with no label within the top k
        self._resolved = False

    # -- protocol -----------------------------------------------------------------

    def info(self) -> dict:
        version = self.model or self._server_model
        if version is None:
            try:
                self._resolve_model()
                version = self.model or self._server_model
            except RunnerError:
                version = None
        version = version or "unknown"
        if self._fingerprint:
            version = f"{version} ({self._fingerprint})"
        identity = self.identify()
        info = {"name": self.name, "version": version, "url": self.url, "llama_cpp_version": None,
                "scoring": self.scoring, **identity}
        if self.scoring == "top_logprobs":
            info.update(top_logprobs=self.top_logprobs, outside_top_k=self.outside_top_k,
                        unanswered=self.unanswered)
        return info

    def identify(self) -> dict:
        """What the server says it serves: ``{"served_model": id or None, "served_md5": md5 or None}``.

        Asks ``/models`` once; raises RunnerError when the answers of one run name two models or two md5s.
        """
        if not self._identified:
            self._resolve_model(always=True)
            self._identified = True
        if len(self._served_md5s) > 1:
            raise RunnerError(f"{self.url} reported serving several md5s during one run "
                              f"({', '.join(sorted(self._served_md5s))}): the model changed while it was evaluated",
                              hint="evaluate again once the server serves one model")
        # Only the answers are compared with each other: a hosted API may list "gpt-x" and answer "gpt-x-0613".
        models = self._answer_models
        if len(models) > 1:
            raise RunnerError(f"{self.url} answered as several models during one run ({', '.join(sorted(models))}): "
                              "the model changed while it was evaluated",
                              hint="evaluate again once the server serves one model")
        served = self._listed_model or self._server_model or self.model
        return {"served_model": served, "served_md5": next(iter(self._served_md5s), None)}

    def predict(self, examples: Sequence[Example], progress: Progress | None = None) -> list[Prediction]:
        self.http.stop.clear()
        self.outside_top_k = self.unanswered = 0
        self._resolve_model()
        tasks: list[tuple[int, int]] = []  # (example index, label index or -1 for one request per example)
        for index, example in enumerate(examples):
            if example.messages is not None and example.is_classification and self.scoring == "echo":
                raise openaichat.cannot_score_labels(self.url, example)
            if example.is_classification and self.scoring == "echo":
                tasks.extend((index, k) for k in range(len(example.labels or ())))
            else:
                tasks.append((index, -1))
        pending_per_example = [0] * len(examples)
        for index, _ in tasks:
            pending_per_example[index] += 1
        answers: dict[tuple[int, int], tuple[Any, float]] = {}
        predictions: list[Prediction | None] = [None] * len(examples)

        # A bounded window of requests in flight, so a huge eval set does not
        # become a huge queue of futures; results are placed by index, so the
        # order of completion never shows.
        window = self.concurrency * 4
        queue = iter(tasks)
        executor = ThreadPoolExecutor(max_workers=self.concurrency, thread_name_prefix="gitmodel-openai")
        in_flight: dict[Future, tuple[int, int]] = {}
        failed = True
        try:
            while True:
                while len(in_flight) < window:
                    task = next(queue, None)
                    if task is None:
                        break
                    in_flight[executor.submit(self._request, examples[task[0]], task[1])] = task
                if not in_flight:
                    break
                done, _ = wait(in_flight, return_when=FIRST_COMPLETED)
                for future in done:
                    index, k = in_flight.pop(future)
                    answers[(index, k)] = future.result()  # re-raises the worker's RunnerError
                    pending_per_example[index] -= 1
                    if pending_per_example[index] == 0:
                        predictions[index] = self._prediction(examples[index], index, answers)
                        if progress is not None:
                            progress(1)
            failed = False
        finally:
            # On failure or Ctrl-C, workers still in a request give up before their next attempt.
            if failed:
                self.http.stop.set()
            executor.shutdown(wait=not failed, cancel_futures=True)
        return [p for p in predictions if p is not None]

    def close(self) -> None:
        """Nothing to free: every request opens and closes its own connection."""

    # -- requests -----------------------------------------------------------------

    def _request(self, example: Example, label_index: int) -> tuple[Any, float]:
        """One completions request; returns (what it yields, seconds it took)."""
        began = time.perf_counter()
        body: dict[str, Any] = {"temperature": 0.0, "seed": self.settings.seed, "max_tokens": 1}
        if self.model:
            body["model"] = self.model
        if example.messages is not None:
            body.update(openaichat.body(example, self.settings, self.top_logprobs))
            answer = self._post(openaichat.PATH, body, example)
            if example.is_classification:
                result: Any = openaichat.top_scores(answer, self.url, example, self.settings.label_prefix)
            else:
                text, tokens = openaichat.generation(answer, self.url, example)
                result = (cut_at_stop(text, self.settings.stop)[0], tokens)
        elif not example.is_classification:
            body.update(prompt=example.text, temperature=self.settings.temperature,
                        max_tokens=self.settings.max_tokens)
            if self.settings.stop:
                body["stop"] = list(self.settings.stop)
            answer = self._post("/completions", body, example)
            text, tokens = self._generation(answer, example)
            result = (cut_at_stop(text, self.settings.stop)[0], tokens)
        elif self.scoring == "echo":
            label = (example.labels or ())[label_index]
            continuation = self.settings.label_prefix + label
            body.update(prompt=example.text + continuation, echo=True, logprobs=1)
            answer = self._post("/completions", body, example)
            result = self._echo_score(answer, example, label, len(body["prompt"]), len(continuation))
        else:
            body.update(prompt=example.text, logprobs=self.top_logprobs)
            answer = self._post("/completions", body, example)
            result = self._top_scores(answer, example)
        self._remember(answer)
        return result, time.perf_counter() - began

    def _post(self, path: str, body: dict, example: Example) -> dict:
        return self.http.post(path, body, about=f" for example {example.id!r}")

    def _note_md5(self, value: Any) -> None:
        if isinstance(value, str) and _MD5.match(value.strip().lower()):
            self._served_md5s.add(value.strip().lower())

    def _resolve_model(self, always: bool = False) -> None:
        """Ask ``/models`` which model is served when none was named (some servers require the name),
        and (``always``) what identity the server gives."""
        if (self._resolved or self.model) and not always:
            self._resolved = True
            return
        if always and self._identified:
            return
        try:
            listing = self.http.get("/models")
        except RunnerError as exc:
            # An endpoint without /models can still complete; anything else (down, refused) is fatal.
            if getattr(exc, "status", None) in (404, 405):
                self._resolved = True
                return
            raise
        data = listing.get("data")
        ids = [m.get("id") for m in data if isinstance(m, dict) and isinstance(m.get("id"), str)] \
            if isinstance(data, list) else []
        entries = {m["id"]: m for m in data if isinstance(m, dict) and isinstance(m.get("id"), str)} \
            if isinstance(data, list) else {}
        if self.model:
            chosen = entries.get(self.model)
        elif len(ids) > 1:
            raise RunnerError(f"{self.url} serves {len(ids)} models ({', '.join(ids)}); say which one to evaluate",
                              hint="set eval.openai.model in params.yaml")
        else:
            chosen = entries.get(ids[0]) if ids else None
            if ids:
                self.model = ids[0]
        if chosen is not None:
            self._listed_model = chosen["id"]
            meta = chosen.get("meta") if isinstance(chosen.get("meta"), dict) else {}
            self._note_md5(chosen.get("md5", meta.get("md5")))
        self._resolved = True

    def _remember(self, answer: dict) -> None:
        # Provenance only: the model id and fingerprint the server reported.
        if isinstance(answer.get("model"), str):
            self._server_model = answer["model"]
            self._answer_models.add(answer["model"])
        if isinstance(answer.get("system_fingerprint"), str):
            self._fingerprint = answer["system_fingerprint"]

    # -- reading answers -------------------------------------------------------------

    def _field(self, answer: dict, path: str, example: Example) -> Any:
        """``answer`` at a dotted path such as ``choices.0.logprobs``; RunnerError naming it if absent."""
        value: Any = answer
        parts = path.split(".")
        for depth, part in enumerate(parts):
            if isinstance(value, list) and part.isdigit() and int(part) < len(value):
                value = value[int(part)]
            elif isinstance(value, dict) and value.get(part) is not None:
                value = value[part]
            else:
                missing = ".".join(parts[:depth + 1]).replace(".0", "[0]")
                raise RunnerError(
                    f"{self.url}/completions answer for example {example.id!r} has no `{missing}`",
                    hint=_FIELD_HINTS.get(part),
                )
        return value

    def _generation(self, answer: dict, example: Example) -> tuple[str, int]:
        text = self._field(answer, "choices.0.text", example)
        tokens = self._field(answer, "usage.completion_tokens", example)
        if not isinstance(text, str) or not isinstance(tokens, int):
            raise RunnerError(f"{self.url}/completions answer for example {example.id!r}: "
                              f"`choices[0].text` or `usage.completion_tokens` has the wrong type")
        return text, tokens

    def _echo_score(self, answer: dict, example: Example, label: str, prompt_chars: int,
                    continuation_chars: int) -> tuple[float, int]:
        """(log-probability of the continuation, number of its tokens) from an echoed prompt."""
        text = self._field(answer, "choices.0.text", example)
        tokens = self._field(answer, "choices.0.logprobs.tokens", example)
        offsets = self._field(answer, "choices.0.logprobs.text_offset", example)
        logprobs = self._field(answer, "choices.0.logprobs.token_logprobs", example)
        where = f"{self.url}/completions answer for example {example.id!r}, label {label!r}"
        if not (isinstance(tokens, list) and isinstance(offsets, list) and isinstance(logprobs, list)
                and len(tokens) == len(offsets) == len(logprobs) and tokens and isinstance(text, str)):
            raise RunnerError(f"{where}: `logprobs.tokens`, `text_offset` and `token_logprobs` "
                              f"are not lists of the same length")
        if len(text) < prompt_chars:
            raise RunnerError(f"{where}: the prompt was not echoed (`choices[0].text` is shorter than it)",
                              hint="the server must support \"echo\": true with logprobs, "
                              "or use the openai runner's top_logprobs scoring")
        generated = len(text) - prompt_chars
        end = offsets[-1] + len(tokens[-1])
        prompt_end = end - generated
        start = prompt_end - continuation_chars
        total, count = 0.0, 0
        for token, offset, logprob in zip(tokens, offsets, logprobs):
            # Every token overlapping the continuation counts, so a token that
            # merges the end of the input with the label is not lost.
            if offset < prompt_end and offset + len(token) > start:
                if not isinstance(logprob, (int, float)) or isinstance(logprob, bool):
                    raise RunnerError(
                        f"{where}: no log-probability for token {token!r} of the label "
                        f"(`token_logprobs` holds {logprob!r})",
                        hint=None if logprob is not None else
                        "an empty input leaves the label's first token without one: give the example an input",
                    )
                total += float(logprob)
                count += 1
        if count == 0:
            raise RunnerError(f"{where}: the echoed tokens do not cover the label")
        return total, count

    def _top_scores(self, answer: dict, example: Example) -> dict[str, float]:
        """The log-probability of each label within the first generated position's top_logprobs.

        Labels outside the top k are left out. An empty list is what a server returns when the
        greedy next token ends the text: no position, so no label within the top k.
        """
        logprobs = self._field(answer, "choices.0.logprobs", example)
        top = logprobs.get("top_logprobs") if isinstance(logprobs, dict) else None
        if top is None or top == []:
            return {}
        if not isinstance(top, list) or not isinstance(top[0], dict):
            raise RunnerError(f"{self.url}/completions answer for example {example.id!r}: "
                              f"`top_logprobs` is not a list of dicts")
        scores: dict[str, float] = {}
        for label in example.labels or ():
            key = self.settings.label_prefix + label
            value = top[0].get(key)
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                scores[label] = float(value)
        return scores

    def _prediction(self, example: Example, index: int,
                    answers: dict[tuple[int, int], tuple[Any, float]]) -> Prediction:
        if not example.is_classification:
            (text, tokens), seconds = answers.pop((index, -1))
            return Prediction(output=text, output_tokens=tokens, latency_ms=seconds * 1000.0)
        labels = list(example.labels or ())
        if self.scoring == "top_logprobs":
            scores, seconds = answers.pop((index, -1))
            if len(scores) < len(labels):
                self.outside_top_k += 1
            if not scores:
                # no label within the top k: no answer, which counts as wrong
                self.unanswered += 1
                return Prediction(output="", latency_ms=seconds * 1000.0)
            # every label outside the top k scores below every label within it, so the best
            # label within it is the answer; the confidence is over the labels within it
            within = [label for label in labels if label in scores]
            return classification(within, [scores[label] for label in within], label_tokens=1,
                                  latency_ms=seconds * 1000.0)
        scored = [answers.pop((index, k)) for k in range(len(labels))]
        # The example's cost is the time of its requests, not the time it waited in the queue.
        latency_ms = sum(seconds for _, seconds in scored) * 1000.0
        return classification(labels, [logprob for (logprob, _), _ in scored],
                              label_tokens=[count for (_, count), _ in scored], latency_ms=latency_ms)


_FIELD_HINTS = {
    "logprobs": "the server must return log-probabilities (llama_cpp.server: start it with --logits_all true)",
    "token_logprobs": "the server must return logprobs for the echoed prompt",
    "completion_tokens": "the server must report `usage` in its answers",
}
