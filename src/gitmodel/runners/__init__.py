"""Runners: how an eval turns examples into predictions (protocol in :mod:`.base`).

Implementations are imported on demand so that, say, the python runner never
loads llama.cpp.
"""
from __future__ import annotations

from pathlib import Path

from gitmodel.errors import RunnerError
from gitmodel.runners.base import Example, Prediction, Runner, RunSettings, classification

RUNNERS = ("llama", "openai", "python")

__all__ = ["RUNNERS", "Example", "Prediction", "Runner", "RunSettings", "classification", "make_runner"]


def make_runner(kind: str, *, settings: RunSettings, model_path: str | Path | None = None,
                url: str | None = None, entry: str | None = None, root: str | Path | None = None,
                **options) -> Runner:
    """Build the runner ``kind``; ``options`` go to its constructor unchanged.

    ``root`` is the repository root: the python runner imports entry points from it.
    """
    if kind == "llama":
        if model_path is None:
            raise RunnerError("the llama runner needs a model file (a GGUF checkpoint)")
        from gitmodel.runners.llama import LlamaRunner

        return LlamaRunner(model_path, settings, **options)
    if kind == "openai":
        if not url:
            raise RunnerError(
                "the openai runner needs the endpoint's URL: pass --url",
                hint="e.g. --url http://127.0.0.1:8080/v1",
            )
        from gitmodel.runners.openai import OpenAIRunner

        return OpenAIRunner(url, settings, **options)
    if kind == "python":
        if not entry:
            raise RunnerError(
                "the python runner needs an entry point: pass --entry module:function",
                hint="e.g. --entry mypkg.fraud:predict",
            )
        from gitmodel.runners.python import PythonRunner

        return PythonRunner(entry, settings, search_path=root, **options)
    raise RunnerError(f"unknown runner {kind!r}; choose one of: {', '.join(RUNNERS)}")
