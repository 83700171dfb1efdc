"""The ``llama`` runner: llama.cpp in-process through llama-cpp-python.

The model is loaded once per run. A classification example costs one forward
pass. Each label is tokenized as ``input + label_prefix + label`` (the exact
tokens a server would see); the prefix that all these tokenizations share
with the input is evaluated once, and a label's score is the log-probability
of its tokens after that prefix. Normally the prefix is the input's own
tokens, so a score is log P(label | input). Scoring every label from the same
position keeps them comparable when a label re-splits the input's last
token. When the labels begin with different characters, the tokens they
share can only be the input's, so the input is not tokenized on its own (on
a small model a tokenization is a tenth of the time).

A single-token label is read straight off the shared prefix's logits; a
longer one continues from the KV cache one token at a time. Log-probabilities
are a float64 log-softmax of the last position's logits, read through the C
API (no ``logits_all``: on a 150k-token vocabulary every position would cost
600 kB). Generation is greedy at temperature 0 (seeded sampling above it) and
stops at end of generation.

Decoding goes through the C API (``llama_batch_get_one`` on a reused token
buffer) rather than ``Llama.eval``, which spends a Python loop per token: on
a small model that bookkeeping is a visible share of the time.
"""
from __future__ import annotations

import collections
import ctypes
import math
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from gitmodel import interrupts
from gitmodel.errors import RunnerError
from gitmodel.runners.base import Example, Prediction, Progress, RunSettings, classification, cut_at_stop

# How many of the examples longer than the training context a warning names.
SHOWN_LONG_EXAMPLES = 5

# llama.cpp's log levels (ggml_log_level) that we keep for error messages.
_LOG_WARN, _LOG_ERROR, _LOG_CONT = 3, 4, 5

# The last lines llama.cpp logged. Our log callback stores them instead of
# printing: the core never prints, and a failed load can quote the reason.
_log_lines: collections.deque[str] = collections.deque(maxlen=8)
_log_callback = None   # the ctypes callback, kept alive for as long as llama.cpp may call it


def _silence_llama_logs(llama_cpp) -> None:
    """Route llama.cpp's (and ggml's) logging into ``_log_lines`` instead of stderr."""
    global _log_callback
    if _log_callback is not None:
        return

    last_level = [0]

    def keep(level: int, text: bytes, _user_data) -> None:
        level = last_level[0] if level == _LOG_CONT else level
        last_level[0] = level
        if level in (_LOG_WARN, _LOG_ERROR) and text:
            line = text.decode("utf-8", "replace").strip()
            if line:
                _log_lines.append(line)

    _log_callback = llama_cpp.llama_log_callback(keep)
    llama_cpp.llama_log_set(_log_callback, ctypes.c_void_p(0))


def _llama_cpp_version(llama_cpp) -> str:
    """llama.cpp's version and build commit, as the loaded library reports them."""
    try:
        version = llama_cpp.llama_version().decode()
        from llama_cpp import _ggml  # private: the only handle on ggml_commit()

        commit = _ggml.libggml.ggml_commit
        commit.restype = ctypes.c_char_p
        return f"{version} ({commit().decode()})"
    except Exception:   # older bindings: fall back to the binding's version
        return str(llama_cpp.__version__)


class LlamaRunner:
    """Scores labels and generates text with one GGUF checkpoint loaded once."""

    name = "llama"

    def __init__(self, model_path: str | Path, settings: RunSettings, md5: str | None = None):
        try:
            import llama_cpp
        except ImportError as e:
            raise RunnerError(f"the llama runner needs llama-cpp-python: {e}",
                              hint="pip install llama-cpp-python") from e
        self._lib = llama_cpp
        self.settings = settings
        self.model_path = Path(model_path)
        if not self.model_path.is_file():
            raise RunnerError(f"{self.model_path}: model file not found")
        from gitmodel import loadcheck

        # A checkpoint's first load runs in a child: an abort there is the file's fault, named.
        loadcheck.ensure_loads(self.model_path, md5=md5, n_ctx=settings.n_ctx)
        _silence_llama_logs(llama_cpp)
        _log_lines.clear()
        try:
            self._llm = llama_cpp.Llama(
                model_path=str(self.model_path),
                n_ctx=settings.n_ctx,
                n_batch=settings.n_ctx,     # a whole prompt in one decode call
                n_threads=settings.n_threads,
                n_threads_batch=settings.n_threads,
                n_gpu_layers=settings.n_gpu_layers,
                seed=settings.seed,
                verbose=False,
            )
        except Exception as e:
            # llama.cpp's own reason ("error loading model: ..."), not whatever it logged last
            reason = next((line for line in _log_lines if "error loading model" in line),
                          _log_lines[-1] if _log_lines else str(e))
            raise RunnerError(f"{self.model_path}: llama.cpp could not load the model: {reason}",
                              hint="check that the file is a GGUF checkpoint this llama.cpp supports") from e
        self._ctx = self._llm.ctx
        self._vocab = llama_cpp.llama_model_get_vocab(self._llm.model)
        self._memory = llama_cpp.llama_get_memory(self._ctx)
        # llama.cpp may round the context up (to 256); the limit stays what params.yaml asked for.
        self._n_ctx = min(settings.n_ctx, self._llm.n_ctx())
        self._n_batch = self._llm.n_batch
        self._n_vocab = self._llm.n_vocab()
        self._tokens = (llama_cpp.llama_token * self._n_ctx)()    # tokenizer output and decode input
        self._logits_type = ctypes.c_float * self._n_vocab
        self._wide = np.empty(self._n_vocab, dtype=np.float64)   # log-softmax scratch
        self._view_address, self._view = 0, self._wide
        self._joiner = settings.label_prefix.encode("utf-8")
        self._piece_buffer = ctypes.create_string_buffer(64)
        self._batcher = None              # the batched generator, when eval.parallel > 1
        self._parting: dict[tuple[str, ...], bool] = {}
        self._cached: list[int] = []      # the tokens the KV cache holds, position by position
        # The context the model was trained on (the GGUF's <arch>.context_length):
        # n_ctx may be larger, and positions past it are ones the model never saw.
        self._n_ctx_train = int(llama_cpp.llama_model_n_ctx_train(self._llm.model))
        self._beyond_training: dict[str, tuple[int, int]] = {}    # example id -> (line, tokens)
        self._info = {"name": self.name, "version": llama_cpp.__version__,
                      "llama_cpp_version": _llama_cpp_version(llama_cpp)}

    # -- protocol ---------------------------------------------------------

    def info(self) -> dict:
        return dict(self._info)

    @property
    def llm(self):
        """The loaded llama-cpp-python model, for a caller that also completes prompts through its own API
        (the server). Such a caller moves the KV cache under this runner: it calls forget_cache() before
        the next predict(), and resets the model's own bookkeeping (``llm.reset()``) after it."""
        return self._llm

    def forget_cache(self) -> None:
        """Assume the KV cache holds nothing reusable: the next decode starts from position 0."""
        self._cached.clear()

    def warnings(self) -> list[str]:
        """What the caller should tell the user about the run (the runner never prints)."""
        if not self._beyond_training:
            return []
        items = list(self._beyond_training.items())
        shown = ", ".join(f"{id_!r} (line {line}, {n} tokens)" if line else f"{id_!r} ({n} tokens)"
                          for id_, (line, n) in items[:SHOWN_LONG_EXAMPLES])
        more = f" and {len(items) - SHOWN_LONG_EXAMPLES} more" if len(items) > SHOWN_LONG_EXAMPLES else ""
        count = "1 example is" if len(items) == 1 else f"{len(items)} examples are"
        return [f"{count} longer than the context {self.model_path.name} was trained on "
                f"({self._n_ctx_train} tokens, its context_length), though within eval.n_ctx "
                f"({self._n_ctx}): {shown}{more}; the model never saw positions that far, "
                "so its answers there may be unreliable"]

    def predict(self, examples: Sequence[Example], progress: Progress | None = None) -> list[Prediction]:
        if self._llm is None:
            raise RunnerError("the llama runner was closed")
        predictions: list[Prediction | None] = [None] * len(examples)
        batched = self.settings.parallel > 1 and self.settings.temperature == 0
        # Ctrl-C takes effect between examples: never inside llama.cpp or its log callback.
        with interrupts.deferred() as interrupt:
            def done(index: int, prediction: Prediction) -> None:
                predictions[index] = prediction
                interrupt.check()
                if progress is not None:
                    progress(1)

            for index, example in enumerate(examples):
                if example.labels:
                    done(index, self._classify(example))
                elif not batched:
                    done(index, self._generate(example))
            if batched:
                generations = [(i, e) for i, e in enumerate(examples) if not e.labels]
                if generations:
                    self._batched().generate(generations, done)
        return predictions

    def close(self) -> None:
        if self._llm is not None:
            with interrupts.deferred():
                if self._batcher is not None:
                    self._batcher.close()
                    self._batcher = None
                self._llm.close()
                self._llm = None

    def _batched(self):
        """The generator of ``parallel`` sequences at once, on a context of its own (made on first use)."""
        if self._batcher is None:
            from gitmodel.runners.llamabatch import BatchedGenerator

            self._batcher = BatchedGenerator(
                self._lib, self._llm.model, self._llm.context_params, self.settings, self._vocab,
                tokenize=lambda example: self._tokenize(example.text.encode("utf-8"), example),
                piece=self._piece, not_a_number=lambda example: self._not_a_number(example, None))
        return self._batcher

    def __enter__(self) -> LlamaRunner:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- classification ---------------------------------------------------

    def _classify(self, example: Example) -> Prediction:
        start = time.perf_counter()
        labels = example.labels
        text = example.text.encode("utf-8")
        fulls = [self._tokenize(text + self._joiner + label.encode("utf-8"), example) for label in labels]
        if self._labels_part_ways(labels):
            # The tokens all labels share cover the input (and label prefix) only:
            # no need to tokenize the input on its own.
            shared = min(_common_prefix(fulls[0], full) for full in fulls[1:])
        else:
            # Labels that begin alike ("very good", "very bad") share label tokens
            # too: score from where the input's own tokens end.
            prompt = self._tokenize(text, example)
            shared = min(_common_prefix(prompt, full) for full in fulls)
        if shared == 0:
            raise RunnerError(f"example {example.id!r}: the labels share no token with the input to condition on",
                              hint="this model adds no BOS token: give every example a non-empty input")
        self._decode_from(0, fulls[0][:shared])
        logits, log_total = self._last_logits()
        # Each label's first token, read now: any further decode overwrites the logits.
        logprobs = [float(logits[full[shared]]) - log_total if len(full) > shared else 0.0 for full in fulls]
        for i, full in enumerate(fulls):
            for j in range(shared + 1, len(full)):
                # A label of several tokens continues from the KV cache, one token at a time.
                step_logits, step_total = self._logits_after(full, j)
                logprobs[i] += float(step_logits[full[j]]) - step_total
        if not all(map(math.isfinite, logprobs)):
            raise self._not_a_number(example, dict(zip(labels, logprobs)))
        latency_ms = (time.perf_counter() - start) * 1000.0
        return classification(labels, logprobs, [len(full) - shared for full in fulls], latency_ms)

    def _labels_part_ways(self, labels: tuple[str, ...]) -> bool:
        """Whether every label begins with a different character (cached per label set)."""
        known = self._parting.get(labels)
        if known is None:
            known = self._parting[labels] = (
                len(labels) > 1 and all(labels) and len({label[0] for label in labels}) == len(labels))
        return known

    def _logits_after(self, tokens: list[int], n: int) -> tuple[np.ndarray, float]:
        """Logits after ``tokens[:n]``, decoding only what the KV cache does not already hold."""
        keep = min(_common_prefix(self._cached, tokens[:n]), n - 1)
        self._decode_from(keep, tokens[keep:n])
        return self._last_logits()

    # -- generation -------------------------------------------------------

    def _generate(self, example: Example) -> Prediction:
        start, cpu_start = time.perf_counter(), time.process_time()
        prompt = self._tokenize(example.text.encode("utf-8"), example)
        self._decode_from(0, prompt)
        budget = min(self.settings.max_tokens, self._n_ctx - len(prompt))
        sampler = self._sampler() if self.settings.temperature > 0 else None
        generated: list[int] = []
        stop = self.settings.stop
        longest_stop = max(map(len, stop), default=0)
        pieces: list[bytes] = []
        output = None
        try:
            while len(generated) < budget:
                if sampler is None:
                    # Greedy; np.argmax takes the lowest id on a tie, as llama.cpp's greedy sampler does.
                    # It also stops at the first NaN, so one look at the chosen logit finds any.
                    logits = self._logits_view()
                    token = int(np.argmax(logits))
                    if math.isnan(logits[token]):
                        raise self._not_a_number(example, None)
                else:
                    token = self._lib.llama_sampler_sample(sampler, self._ctx, -1)
                if self._lib.llama_vocab_is_eog(self._vocab, token):
                    break
                generated.append(token)
                if stop:
                    # Stop at once when a stop sequence is complete: only the tail can hold a new one.
                    searched = len(b"".join(pieces).decode("utf-8", "replace"))
                    pieces.append(self._piece(token))
                    text, stopped = cut_at_stop(b"".join(pieces).decode("utf-8", "replace"), stop,
                                                max(0, searched - longest_stop + 1))
                    if stopped:
                        output = text
                        break
                if len(generated) < budget:
                    self._decode_from(len(self._cached), [token])
        finally:
            if sampler is not None:
                self._lib.llama_sampler_free(sampler)
        if output is None:
            output = self._detokenize(generated).decode("utf-8", "replace")
        latency_ms = (time.perf_counter() - start) * 1000.0
        cpu_ms = (time.process_time() - cpu_start) * 1000.0
        return Prediction(output=output, output_tokens=len(generated), latency_ms=latency_ms, cpu_ms=cpu_ms)

    def _sampler(self):
        """A seeded temperature sampler, fresh per example so its draws do not depend on order."""
        lib = self._lib
        chain = lib.llama_sampler_chain_init(lib.llama_sampler_chain_default_params())
        lib.llama_sampler_chain_add(chain, lib.llama_sampler_init_temp(self.settings.temperature))
        lib.llama_sampler_chain_add(chain, lib.llama_sampler_init_dist(self.settings.seed))
        return chain

    # -- llama.cpp --------------------------------------------------------

    def _not_a_number(self, example: Example, scores: dict | None) -> RunnerError:
        where = f" (line {example.line})" if example.line else ""
        what = (f"NaN or infinite label scores ({', '.join(f'{k}: {v}' for k, v in scores.items())})"
                if scores is not None else "NaN logits")
        return RunnerError(
            f"{self.model_path}: the model produced {what} for example {example.id!r}{where}: "
            "its weights hold NaN or infinite values, or overflow",
            hint="the checkpoint is likely corrupted: re-convert or re-download it, then `git model add` it again")

    def _tokenize(self, text: bytes, example: Example) -> list[int]:
        """Tokens of ``text`` with BOS; an error naming the example when it exceeds n_ctx.

        A rendered chat template (``settings.special``) holds special tokens as text (``<start_of_turn>``)
        and often its own BOS: they are parsed as the special tokens they are, and BOS is not doubled."""
        special = self.settings.special
        n = self._lib.llama_tokenize(self._vocab, text, len(text), self._tokens, self._n_ctx, True, special)
        if special and n >= 2 and self._tokens[0] == self._tokens[1] == self._lib.llama_vocab_bos(self._vocab):
            n -= 1
            self._tokens[:n] = self._tokens[1:n + 1]
        if n < 0 or n >= self._n_ctx:
            where = f" (line {example.line})" if example.line else ""
            raise RunnerError(
                f"example {example.id!r}{where}: {abs(n)} tokens do not fit the context of {self._n_ctx} tokens",
                hint="raise eval.n_ctx in params.yaml or shorten the input",
            )
        if 0 < self._n_ctx_train < n:
            known = self._beyond_training.get(example.id)
            if known is None or known[1] < n:
                self._beyond_training[example.id] = (example.line, n)
        return self._tokens[:n]

    def _detokenize(self, tokens: list[int]) -> bytes:
        """The tokens' pieces joined, leading space kept (as llama-cpp-python's server returns them)."""
        return b"".join(map(self._piece, tokens))

    def _piece(self, token: int) -> bytes:
        lib, buffer = self._lib, self._piece_buffer
        n = lib.llama_token_to_piece(self._vocab, token, buffer, len(buffer), 0, False)
        if n < 0:   # a piece longer than the buffer: -n is its size
            buffer = self._piece_buffer = ctypes.create_string_buffer(-n)
            n = lib.llama_token_to_piece(self._vocab, token, buffer, len(buffer), 0, False)
        return buffer.raw[:n]

    def _decode_from(self, n_past: int, tokens: Sequence[int]) -> None:
        """Evaluate ``tokens`` at positions ``n_past...``, dropping whatever the cache held from there."""
        lib = self._lib
        lib.llama_memory_seq_rm(self._memory, -1, n_past, -1)
        del self._cached[n_past:]
        step = self._n_batch
        for chunk in (tokens,) if len(tokens) <= step else (tokens[i:i + step] for i in range(0, len(tokens), step)):
            n = len(chunk)
            self._tokens[:n] = chunk
            # pos = NULL: llama.cpp places the batch right after the cache's last position.
            status = lib.llama_decode(self._ctx, lib.llama_batch_get_one(self._tokens, n))
            if status != 0:
                reason = f": {_log_lines[-1]}" if _log_lines else ""
                raise RunnerError(f"llama.cpp failed to evaluate {n} tokens "
                                  f"(llama_decode returned {status}){reason}")
            self._cached.extend(chunk)

    def _logits_view(self) -> np.ndarray:
        """The last position's logits, a float32 view of llama.cpp's buffer (valid until the next decode)."""
        address = ctypes.addressof(self._lib.llama_get_logits_ith(self._ctx, -1).contents)
        if address != self._view_address:   # the buffer rarely moves: reuse the view
            self._view = np.frombuffer(self._logits_type.from_address(address), dtype=np.float32)
            self._view_address = address
        return self._view

    def _last_logits(self) -> tuple[np.ndarray, float]:
        """(logits view, log of the softmax denominator in float64): logprob(t) = logits[t] - total."""
        logits = self._logits_view()
        top = float(logits.max())
        wide = np.subtract(logits, top, out=self._wide, dtype=np.float64)
        return logits, top + math.log(np.exp(wide, out=wide).sum())


def _common_prefix(a: Sequence[int], b: Sequence[int]) -> int:
    """How many leading tokens ``a`` and ``b`` share."""
    n = min(len(a), len(b))
    if n and a[:n - 1] == b[:n - 1]:
        # The usual case (labels differ in their last token), compared at C speed.
        return n if a[n - 1:n] == b[n - 1:n] else n - 1
    for i in range(n):
        if a[i] != b[i]:
            return i
    return n
