"""Batched generation for the llama runner: ``eval.parallel`` sequences decoded together.

On a CPU, decoding one token is bound by reading the weights; decoding one token for each
of P sequences in the same ``llama_decode`` reads them once, so P generations cost little
more than one. Each example gets its own sequence id and its own part of the KV cache
(``n_ctx`` tokens each, not unified); its prompt is evaluated alone, then the sequences
step together, one token each per decode, until every one has stopped (end of
generation, a stop sequence, its token budget). A sequence that stops makes room for the
next example at once, so the batch stays full.

The batch's shape can move the last bits of the floats (another matrix kernel for P rows
than for one), so ``parallel`` is recorded with the result; for one value the outputs are
the same run to run, since the examples fill the slots in the same order every time.
"""
from __future__ import annotations

import ctypes
import math
import time
from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np

from gitmodel.errors import RunnerError
from gitmodel.runners.base import Example, Prediction, RunSettings, cut_at_stop


@dataclass
class _Slot:
    """One sequence of the batch: the example it generates for, and where it stands."""

    index: int
    example: Example
    n_past: int
    budget: int
    started: float
    generated: list[int] = field(default_factory=list)
    pieces: list[bytes] = field(default_factory=list)
    output: str | None = None
    cpu_ms: float = 0.0      # this sequence's share of the CPU time of the decodes it took part in
    next_token: int = -1
    row: int = -1            # the row of the last decode whose logits are this slot's


class BatchedGenerator:
    """Generates for many examples at once on its own llama.cpp context (``parallel`` sequences)."""

    def __init__(self, lib, model, base_params, settings: RunSettings, vocab,
                 tokenize: Callable[[Example], list[int]], piece: Callable[[int], bytes],
                 not_a_number: Callable[[Example], Exception]):
        self._lib, self.settings, self._vocab = lib, settings, vocab
        self._model, self._base_params = model, base_params
        self._tokenize, self._piece, self._not_a_number = tokenize, piece, not_a_number
        self.parallel = settings.parallel
        self._ctx = None
        self._prompts: dict[int, list[int]] = {}
        self._seq_ctx = 0                 # the KV cache positions each sequence has
        self._n_vocab = lib.llama_vocab_n_tokens(vocab)
        self._logits_type = ctypes.c_float * self._n_vocab
        self._longest_stop = max(map(len, settings.stop), default=0)

    def _context_for(self, seq_ctx: int) -> None:
        """A context whose every sequence holds ``seq_ctx`` positions (rounded up; made anew when larger)."""
        seq_ctx = min(self.settings.n_ctx, -(-seq_ctx // 256) * 256)
        if self._ctx and seq_ctx <= self._seq_ctx:
            return
        self.close()
        lib, params = self._lib, self._lib.llama_context_default_params()
        for name, _ in params._fields_:
            setattr(params, name, getattr(self._base_params, name))
        params.n_seq_max = self.parallel
        params.n_ctx = seq_ctx * self.parallel    # each sequence has seq_ctx positions of its own
        params.n_batch = params.n_ubatch = max(seq_ctx, self.parallel)
        params.kv_unified = False
        self._ctx = lib.llama_init_from_model(self._model, params)
        if not self._ctx:
            raise RunnerError(f"llama.cpp could not create a context for {self.parallel} parallel sequences "
                              f"of {seq_ctx} tokens", hint="lower eval.parallel")
        self._seq_ctx = seq_ctx
        self._memory = lib.llama_get_memory(self._ctx)
        self._batch = lib.llama_batch_init(params.n_batch, 0, 1)

    def close(self) -> None:
        if self._ctx:
            self._lib.llama_batch_free(self._batch)
            self._lib.llama_free(self._ctx)
            self._ctx = None

    def generate(self, items: Sequence[tuple[int, Example]], done: Callable[[int, Prediction], None]) -> None:
        """Generate for every (index, example); ``done(index, prediction)`` as each one finishes."""
        # Every prompt tokenized first (an example too long is named before any decode): the longest
        # prompt and the token budget size the cache, not n_ctx times parallel.
        prompts = {index: self._tokenize(example) for index, example in items}
        self._context_for(max(map(len, prompts.values())) + self.settings.max_tokens)
        self._prompts = prompts
        queue = list(items)[::-1]
        slots: dict[int, _Slot] = {}
        while queue or slots:
            for seq in range(self.parallel):
                if seq not in slots and queue:
                    index, example = queue.pop()
                    slot = self._start(seq, index, example)
                    if self._advance(seq, slot):
                        slots[seq] = slot
                    else:
                        done(slot.index, self._prediction(slot))
            if not slots:
                continue
            self._step(slots)
            for seq in list(slots):
                if not self._advance(seq, slots[seq]):
                    slot = slots.pop(seq)
                    done(slot.index, self._prediction(slot))

    # -- one sequence --------------------------------------------------------------

    def _start(self, seq: int, index: int, example: Example) -> _Slot:
        """Evaluate the example's prompt alone in sequence ``seq``; its logits are then the last row."""
        started, cpu_started = time.perf_counter(), time.process_time()
        prompt = self._prompts.pop(index)
        self._lib.llama_memory_seq_rm(self._memory, seq, -1, -1)
        self._fill([(t, i, seq, i == len(prompt) - 1) for i, t in enumerate(prompt)])
        budget = min(self.settings.max_tokens, self._seq_ctx - len(prompt))
        slot = _Slot(index, example, len(prompt), budget, started, row=len(prompt) - 1)
        slot.cpu_ms = (time.process_time() - cpu_started) * 1000.0
        return slot

    def _advance(self, seq: int, slot: _Slot) -> bool:
        """Choose the slot's next token from its logits; False when its generation has ended."""
        if len(slot.generated) >= slot.budget:
            return False
        logits = np.frombuffer(self._logits_type.from_address(
            ctypes.addressof(self._lib.llama_get_logits_ith(self._ctx, slot.row).contents)), dtype=np.float32)
        token = int(np.argmax(logits))   # greedy: the lowest id on a tie, as llama.cpp's greedy sampler
        if math.isnan(logits[token]):
            raise self._not_a_number(slot.example)
        if self._lib.llama_vocab_is_eog(self._vocab, token):
            return False
        slot.generated.append(token)
        if self.settings.stop:
            searched = len(b"".join(slot.pieces).decode("utf-8", "replace"))
            slot.pieces.append(self._piece(token))
            text, stopped = cut_at_stop(b"".join(slot.pieces).decode("utf-8", "replace"), self.settings.stop,
                                        max(0, searched - self._longest_stop + 1))
            if stopped:
                slot.output = text
                return False
        if len(slot.generated) >= slot.budget:
            return False
        slot.next_token = token
        return True

    def _step(self, slots: dict[int, _Slot]) -> None:
        """One decode: each live sequence's last token at its next position."""
        rows = []
        cpu_started = time.process_time()
        for seq, slot in sorted(slots.items()):
            slot.row = len(rows)
            rows.append((slot.next_token, slot.n_past, seq, True))
            slot.n_past += 1
        self._fill(rows)
        share = (time.process_time() - cpu_started) * 1000.0 / len(rows)
        for slot in slots.values():
            slot.cpu_ms += share

    def _fill(self, rows: list[tuple[int, int, int, bool]]) -> None:
        """Decode (token, position, sequence, wants logits) rows, in chunks of the batch size."""
        batch = self._batch
        limit = self._lib.llama_n_batch(self._ctx)
        for start in range(0, len(rows), limit):
            chunk = rows[start:start + limit]
            batch.n_tokens = len(chunk)
            for i, (token, pos, seq, logits) in enumerate(chunk):
                batch.token[i], batch.pos[i], batch.n_seq_id[i] = token, pos, 1
                batch.seq_id[i][0] = seq
                batch.logits[i] = logits
            status = self._lib.llama_decode(self._ctx, batch)
            if status != 0:
                raise RunnerError(f"llama.cpp failed to evaluate a batch of {len(chunk)} tokens "
                                  f"(llama_decode returned {status})")

    def _prediction(self, slot: _Slot) -> Prediction:
        output = slot.output
        if output is None:
            output = b"".join(map(self._piece, slot.generated)).decode("utf-8", "replace")
        return Prediction(output=output, output_tokens=len(slot.generated),
                          latency_ms=(time.perf_counter() - slot.started) * 1000.0, cpu_ms=slot.cpu_ms)
