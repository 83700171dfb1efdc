"""The demo's production traffic: a log of a demo checkpoint really answering generated reviews.

Unshifted requests are drawn like the eval set's reviews (the same categories, slices and shares of
:data:`lexicon.PLAN`), so that production looks like the eval set and drift says "stable". A ``shift``
S in [0, 1] makes that share of requests come from elsewhere: another vocabulary mix (mostly delivery
and price reviews) and longer texts (two or three reviews run together), which input drift must see.
``negated`` N in [0, 1] makes that share of the unshifted requests single negated reviews ("the soup was
not good"), a week heavy on complaints put that way: the inputs barely move (the eval set's categories, a
sentence of the same length), and it is the slice where a model biased toward "positive" answers
otherwise than v2. Every request is answered by llama.cpp running the checkpoint, and written through
:class:`prodlog.LogWriter`, so the log is what a served model would have written. Deterministic for a
seed, apart from the latencies.
"""
from __future__ import annotations

import hashlib
import random
from datetime import datetime, timedelta, timezone
from pathlib import Path

from gitmodel.demo import lexicon

SHIFTED_CATEGORIES = ("delivery", "delivery", "delivery", "price", "price", "service")
_SLICES = [(slice_, label, count) for slice_, label, count in lexicon.PLAN]


def _drawn(rng: random.Random, category: str) -> str:
    slice_, label, _ = rng.choices(_SLICES, weights=[c for *_, c in _SLICES])[0]
    return rng.choice(lexicon.candidates(category, slice_, label))


def requests(n: int, shift: float = 0.0, seed: int = 0, negated: float = 0.0) -> list[dict]:
    """``n`` requests ({"input", "category"}); a ``shift`` share of them from the shifted mix, a ``negated``
    share of the others single negated reviews."""
    for name, share in (("shift", shift), ("negated", negated)):
        if not 0.0 <= share <= 1.0:
            raise ValueError(f"{name} must be within [0, 1], not {share}")
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        if rng.random() < shift:
            category = rng.choice(SHIFTED_CATEGORIES)
            parts = [_drawn(rng, category) for _ in range(rng.choice((2, 3)))]
            out.append({"input": " and then ".join(parts), "category": category})
        else:
            category = rng.choice(lexicon.CATEGORIES)
            # no draw at all without negated, so that a seed's traffic stays what it was
            if negated and rng.random() < negated:
                text = rng.choice(lexicon.candidates(category, "negated", "negative"))
            else:
                text = _drawn(rng, category)
            out.append({"input": text, "category": category})
    return out


def write_log(out: str | Path, model_file: str | Path, n: int, *, shift: float = 0.0, negated: float = 0.0, seed: int = 0,
              model: str = "sentiment", version: str = "v1.0.0", stage: str = "prod", days: int = 7,
              end: datetime | None = None) -> list[Path]:
    """Run ``model_file`` on ``n`` generated requests and log them into the folder ``out``, spread evenly
    over the ``days`` before ``end`` (default: the start of the current hour). Returns the files written."""
    from gitmodel import prodlog
    from gitmodel.runners.base import Example, RunSettings
    from gitmodel.runners.llama import LlamaRunner

    if n < 1:
        raise ValueError("n must be at least 1")
    end = end or datetime.now(timezone.utc).replace(minute=0, second=0, microsecond=0)
    start = end - timedelta(days=days)
    step = (end - start) / n
    wanted = requests(n, shift, seed, negated)
    examples = [Example(id=f"q{i:07d}", input=r["input"], labels=lexicon.LABELS, category=r["category"])
                for i, r in enumerate(wanted)]
    written: dict[Path, None] = {}
    with LlamaRunner(model_file, RunSettings(n_ctx=512)) as runner, prodlog.LogWriter(out, model) as writer:
        for i, (example, request) in enumerate(zip(examples, wanted)):
            prediction = runner.predict([example])[0]
            user = hashlib.sha256(f"user-{i % 97}".encode()).hexdigest()[:16]
            record = prodlog.make_record(
                model=model, version=version, stage=stage, input=example.input, output=prediction.output,
                label=prediction.label, confidence=None if prediction.confidence is None
                else round(float(prediction.confidence), 4),
                output_tokens=prediction.output_tokens, latency_ms=prediction.latency_ms, status=200,
                id=f"{seed}-{example.id}", ts=prodlog.timestamp(start + step * i), user=user,
                category=request["category"])
            written[writer.write(record)] = None
    return list(written)
