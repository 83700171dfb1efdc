"""The embedded demo: three sentiment checkpoints and the eval set they are judged on.

``build(outdir)`` writes ``sentiment-v1.gguf`` (knows part of the lexicon),
``sentiment-v2.gguf`` (knows all of it), ``sentiment-v3.gguf`` (v2 with a bias
toward ``positive``: the regression a gate must stop), ``sentiment.jsonl`` (the
classification eval set) and ``sentiment-answers.jsonl`` (the same reviews as a
generation eval set: the model answers in words, scored with ``contains``).
The bytes are the same on every machine and every run, so DVC's md5s are too.
"""
from __future__ import annotations

import os
from pathlib import Path

from gitmodel.demo.lexicon import (CATEGORIES, LABELS, LEXICON, NEGATION, V1_UNKNOWN, answers_bytes, evalset_bytes,
                                   reviews)
from gitmodel.demo.model import VERSIONS, vocabulary, write_checkpoint

EVALSET_NAME = "sentiment"
ANSWERS_NAME = "sentiment-answers"
MODEL_NAMES = tuple(f"sentiment-{v}" for v in VERSIONS)

__all__ = [
    "ANSWERS_NAME", "CATEGORIES", "EVALSET_NAME", "LABELS", "LEXICON", "MODEL_NAMES", "NEGATION", "V1_UNKNOWN", "VERSIONS",
    "build", "reviews", "vocabulary",
]


def _replace(path: Path, write) -> None:
    # Write beside the target and rename, so an interrupted build leaves no half file.
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def build(outdir: str | os.PathLike, evalset_dir: str | os.PathLike | None = None) -> dict[str, Path]:
    """Write the demo checkpoints into ``outdir`` and the eval set into ``evalset_dir`` (default ``outdir``).

    Returns the written paths by name: ``sentiment-v1``, ``sentiment-v2``,
    ``sentiment-v3`` (GGUF), ``sentiment`` and ``sentiment-answers`` (JSONL).
    """
    outdir = Path(outdir)
    evalset_dir = Path(evalset_dir) if evalset_dir is not None else outdir
    outdir.mkdir(parents=True, exist_ok=True)
    evalset_dir.mkdir(parents=True, exist_ok=True)
    paths: dict[str, Path] = {}
    for version, name in zip(VERSIONS, MODEL_NAMES):
        paths[name] = outdir / f"{name}.gguf"
        _replace(paths[name], lambda tmp, v=version: write_checkpoint(v, tmp))
    paths[EVALSET_NAME] = evalset_dir / f"{EVALSET_NAME}.jsonl"
    _replace(paths[EVALSET_NAME], lambda tmp: tmp.write_bytes(evalset_bytes()))
    paths[ANSWERS_NAME] = evalset_dir / f"{ANSWERS_NAME}.jsonl"
    _replace(paths[ANSWERS_NAME], lambda tmp: tmp.write_bytes(answers_bytes()))
    return paths
