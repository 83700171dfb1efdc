"""The runner protocol: how an eval turns examples into predictions.

A runner is built once per eval run (the model is loaded once) and asked for
predictions for a list of examples. Classification examples (``labels``) are
scored label by label; the runner returns each label's log-probability after
the input and :func:`classification` turns those into answer, confidence and
tie. Generation examples return the generated text and its token count.

Runners never print; they call ``progress(n)`` after each finished example.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Protocol, Sequence

# Two label log-probabilities closer than this are a tie: the model cannot tell
# the labels apart, and the answer (the first label in the example's order) is
# a coin the eval set chose, not the model.
TIE_EPSILON = 1e-6


@dataclass(frozen=True)
class Example:
    """One eval set line (see schemas/evalset.schema.json)."""

    id: str
    input: str
    expected: str | None = None
    labels: tuple[str, ...] | None = None
    category: str | None = None
    line: int = 0
    # Every field of the line, for prompt placeholders and slices (not compared: a line is its id).
    fields: Mapping[str, Any] = field(default_factory=dict, compare=False, hash=False, repr=False)
    # The text the runner sees: the input rendered through the prompt and chat templates (None: the input).
    prompt: str | None = field(default=None, compare=False, hash=False, repr=False)
    # The conversation the prompt was rendered from, for runners that send messages (a chat API).
    messages: tuple[dict, ...] | None = field(default=None, compare=False, hash=False, repr=False)
    scorer: str | None = None         # the line's own scorer, over the eval set's

    @property
    def is_classification(self) -> bool:
        return bool(self.labels)

    @property
    def text(self) -> str:
        """What the model is given."""
        return self.input if self.prompt is None else self.prompt


@dataclass
class Prediction:
    """What a runner made of one example."""

    output: str                       # the label for classification, the generated text otherwise
    label: str | None = None          # argmax label (classification only)
    confidence: float | None = None   # softmax probability of `label` over the example's labels
    scores: dict[str, float] | None = None  # label -> log-probability after the input
    tie: bool = False                 # the best labels scored equal (within TIE_EPSILON)
    output_tokens: int = 0            # tokens produced (classification: tokens of the chosen label)
    latency_ms: float = 0.0           # wall time for this example (timings never reach outputs.jsonl)
    # CPU time of this process for this example, when the runner computes in-process: unlike wall
    # time, it does not grow when other processes take the cores (None: the work happens elsewhere)
    cpu_ms: float | None = None
    # A generation's verdict from its scorer (see gitmodel.scorers); None: not scored yet, or no verdict.
    verdict: bool | None = None


@dataclass
class RunSettings:
    """The eval params that change what a runner computes (params.yaml `eval:`)."""

    temperature: float = 0.0
    seed: int = 0
    max_tokens: int = 64
    n_ctx: int = 512
    n_threads: int = 1
    n_gpu_layers: int = 0
    label_prefix: str = " "           # text put between the input and a label when scoring it
    stop: tuple[str, ...] = ()        # a generation ends before the first of these (not included)
    special: bool = False             # the prompt holds special tokens as text (a rendered chat template)
    parallel: int = 1                 # generations decoded together in one llama.cpp batch
    extra: dict = field(default_factory=dict)

    @classmethod
    def from_params(cls, p: Mapping[str, Any], special: bool = False) -> "RunSettings":
        """From eval params (params.yaml's, or those recorded with a result). ``n_threads`` 0 is every
        core: the thread count does not change llama.cpp's outputs (measured), so the recorded 0 stays
        comparable across machines; the count used is in the timing conditions."""
        return cls(temperature=float(p["temperature"]), seed=int(p["seed"]), max_tokens=int(p["max_tokens"]),
                   n_ctx=int(p["n_ctx"]), n_threads=int(p["n_threads"]) or available_cores(),
                   n_gpu_layers=int(p["n_gpu_layers"]), label_prefix=str(p["label_prefix"]),
                   stop=tuple(p.get("stop") or ()), special=special, parallel=int(p.get("parallel", 1)))


def available_cores() -> int:
    """The cores this process may run on (its affinity, not the machine's count)."""
    import os

    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


Progress = Callable[[int], None]


class Runner(Protocol):
    name: str

    def info(self) -> dict:
        """Provenance for the metrics file: {"name", "version", "llama_cpp_version"?, ...}."""

    def predict(self, examples: Sequence[Example], progress: Progress | None = None) -> list[Prediction]:
        """One prediction per example, in order. Raises RunnerError on failure."""

    def close(self) -> None:
        """Free the model / connections."""


def classification(labels: Sequence[str], logprobs: Sequence[float], label_tokens: int | Sequence[int] = 1,
                   latency_ms: float = 0.0) -> Prediction:
    """Answer, confidence and tie from each label's log-probability.

    The answer is the argmax; on a tie the first of the tied labels in the
    example's order wins, and ``tie`` says so. Confidence is the softmax over
    the example's labels only. ``label_tokens`` is the chosen label's token
    count, or one count per label (the runner cannot know the answer before).
    """
    # One plain loop: this runs once per example, and generators cost more than the arithmetic.
    best = max(logprobs)
    top, tied, weights = -1, 0, []
    for i, lp in enumerate(logprobs):
        weights.append(math.exp(lp - best))
        if best - lp <= TIE_EPSILON:
            tied += 1
            if top < 0:
                top = i
    tie = tied > 1
    # The best score's probability, summed exactly (fsum): the same whatever the
    # order of the labels, and whichever tied label was put first.
    confidence = 1.0 / math.fsum(weights)
    return Prediction(
        output=labels[top],
        label=labels[top],
        confidence=confidence,
        scores=dict(zip(labels, map(float, logprobs))),
        tie=tie,
        output_tokens=label_tokens if isinstance(label_tokens, int) else int(label_tokens[top]),
        latency_ms=latency_ms,
    )


def cut_at_stop(text: str, stop: Sequence[str], start: int = 0) -> tuple[str, bool]:
    """``text`` up to the first stop sequence found at or after ``start`` (which is dropped), and
    whether one was found. Every runner ends a generation here, so they agree on where it ends."""
    cut = -1
    for s in stop:
        at = text.find(s, start)
        if at >= 0 and (cut < 0 or at < cut):
            cut = at
    return (text, False) if cut < 0 else (text[:cut], True)
