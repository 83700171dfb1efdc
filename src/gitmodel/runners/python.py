"""The ``python`` runner: a ``module:function`` in the user's repository.

For models that are not language models (a fraud classifier, a rules engine).
The function takes a list of input strings and returns one result per input:

* classification examples: a label string, a ``(label, confidence)`` pair, a
  dict ``{"label": ..., "confidence": ...}`` (confidence optional) or a dict
  ``{"scores": {label: log-probability}}`` covering every label of the example;
* generation examples: the generated text.

A bare label has no confidence (``None``); only ``scores`` give ties and the
softmax confidence. The function sees no tokenizer, so ``output_tokens`` is 0.
"""
from __future__ import annotations

import importlib
import math
import numbers
import sys
import time
from pathlib import Path
from typing import Any, Callable, Sequence

from gitmodel.errors import RunnerError
from gitmodel.runners.base import Example, Prediction, Progress, RunSettings, classification, cut_at_stop

DEFAULT_BATCH_SIZE = 256

_CLASSIFICATION_SHAPES = (
    "a label string, a (label, confidence) pair, or a dict with 'label' (and 'confidence') or 'scores'"
)


class PythonRunner:
    """Calls ``module:function`` on batches of inputs and checks what it returns."""

    name = "python"

    def __init__(self, entry: str, settings: RunSettings, search_path: str | Path | None = None):
        self.entry = entry
        self.settings = settings
        self._added_path: str | None = None
        module_name, _, attribute = entry.partition(":")
        if not module_name or not attribute or ":" in attribute:
            raise RunnerError(
                f"python entry point {entry!r} is not of the form module:function",
                hint="pass e.g. --entry mypkg.fraud:predict",
            )
        self.batch_size = _batch_size(settings)
        if search_path is not None:
            # The user's repository root, so `mypkg.fraud:predict` imports from it.
            path = str(Path(search_path).resolve())
            if path not in sys.path:
                sys.path.insert(0, path)
                self._added_path = path
        self.module = self._import(module_name)
        self.function = self._resolve(module_name, attribute)

    def _import(self, module_name: str):
        # Modules written after this interpreter started are invisible to the
        # finders' directory caches until they are invalidated.
        importlib.invalidate_caches()
        try:
            return importlib.import_module(module_name)
        except Exception as exc:  # noqa: BLE001 - any failure while importing user code
            raise RunnerError(
                f"python entry point {self.entry!r}: cannot import module {module_name}: "
                f"{type(exc).__name__}: {exc}",
                hint="check the module path (relative to the repository root) and that it imports cleanly",
            ) from exc

    def _resolve(self, module_name: str, attribute: str) -> Callable[[list[str]], Any]:
        target: Any = self.module
        for part in attribute.split("."):
            if not hasattr(target, part):
                raise RunnerError(f"python entry point {self.entry!r}: module {module_name} has no attribute {attribute!r}")
            target = getattr(target, part)
        if not callable(target):
            raise RunnerError(
                f"python entry point {self.entry!r}: {module_name}.{attribute} is not callable "
                f"(it is a {type(target).__name__})"
            )
        return target

    def info(self) -> dict:
        version = getattr(self.module, "__version__", None)
        if version is None:
            top = sys.modules.get(self.module.__name__.partition(".")[0])
            version = getattr(top, "__version__", None)
        return {
            "name": self.name,
            "version": self.entry if version is None else f"{self.entry}=={version}",
            "llama_cpp_version": None,
        }

    def predict(self, examples: Sequence[Example], progress: Progress | None = None) -> list[Prediction]:
        predictions: list[Prediction] = []
        for start in range(0, len(examples), self.batch_size):
            batch = examples[start:start + self.batch_size]
            began = time.perf_counter()
            results = self._call([example.text for example in batch], start)
            # The function sees the batch at once: each example gets its share of the time.
            latency_ms = (time.perf_counter() - began) * 1000.0 / len(batch)
            for offset, (example, item) in enumerate(zip(batch, results)):
                predictions.append(self._prediction(example, item, start + offset, latency_ms))
            if progress is not None:
                progress(len(batch))
        return predictions

    def close(self) -> None:
        if self._added_path is not None and self._added_path in sys.path:
            sys.path.remove(self._added_path)
        self._added_path = None

    def _call(self, inputs: list[str], start: int) -> list:
        try:
            results = self.function(inputs)
        except Exception as exc:  # noqa: BLE001 - user code may raise anything
            raise RunnerError(
                f"python entry point {self.entry!r} raised {type(exc).__name__}: {exc} "
                f"(on items {start}-{start + len(inputs) - 1})"
            ) from exc
        # Any ordered sized collection will do (a list, a tuple, a numpy array).
        if isinstance(results, (str, bytes, dict, set, frozenset)) or not (
            hasattr(results, "__len__") and hasattr(results, "__iter__")
        ):
            raise RunnerError(
                f"python entry point {self.entry!r} returned a {type(results).__name__}, "
                f"expected a list with one result per input"
            )
        if len(results) != len(inputs):
            raise RunnerError(
                f"python entry point {self.entry!r} returned {len(results)} results for {len(inputs)} inputs"
            )
        return list(results)

    def _prediction(self, example: Example, item: Any, index: int, latency_ms: float) -> Prediction:
        where = f"python entry point {self.entry!r}: item {index} (example {example.id!r})"
        if not example.is_classification:
            if not isinstance(item, str):
                raise RunnerError(f"{where} is a {type(item).__name__}, expected the generated text (a string)")
            return Prediction(output=cut_at_stop(item, self.settings.stop)[0], latency_ms=latency_ms)

        labels = list(example.labels or ())
        if isinstance(item, dict) and "scores" in item:
            return self._from_scores(where, labels, item["scores"], latency_ms)
        if isinstance(item, str):
            label, confidence = item, None
        elif isinstance(item, (tuple, list)) and len(item) == 2:
            label, confidence = item
        elif isinstance(item, dict) and "label" in item:
            label, confidence = item["label"], item.get("confidence")
        else:
            raise RunnerError(f"{where} is a {_describe(item)}, expected {_CLASSIFICATION_SHAPES}")
        if not isinstance(label, str):
            raise RunnerError(f"{where}: the label is a {type(label).__name__}, expected a string")
        if label not in labels:
            raise RunnerError(f"{where}: label {label!r} not among the example's labels {labels}")
        if confidence is not None:
            if not _is_number(confidence) or not 0.0 <= float(confidence) <= 1.0:
                raise RunnerError(f"{where}: confidence {confidence!r} is not a number between 0 and 1")
            confidence = float(confidence)
        return Prediction(output=label, label=label, confidence=confidence, latency_ms=latency_ms)

    @staticmethod
    def _from_scores(where: str, labels: list[str], scores: Any, latency_ms: float) -> Prediction:
        if not isinstance(scores, dict):
            raise RunnerError(f"{where}: 'scores' is a {type(scores).__name__}, expected a dict label -> log-probability")
        unknown = [label for label in scores if label not in labels]
        if unknown:
            raise RunnerError(f"{where}: label {unknown[0]!r} not among the example's labels {labels}")
        missing = [label for label in labels if label not in scores]
        if missing:
            raise RunnerError(f"{where}: 'scores' has no score for label {missing[0]!r}")
        for label in labels:
            value = scores[label]
            if not _is_number(value) or not math.isfinite(float(value)):
                raise RunnerError(
                    f"{where}: score for {label!r} is {value!r}, expected a finite log-probability"
                )
        return classification(labels, [float(scores[label]) for label in labels],
                              label_tokens=0, latency_ms=latency_ms)


def _is_number(value: Any) -> bool:
    # bool is an int subclass; True as a confidence is a bug in the user's code.
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _describe(item: Any) -> str:
    if isinstance(item, (tuple, list)):
        return f"{type(item).__name__} of {len(item)} items"
    if isinstance(item, dict):
        return f"dict without 'label' or 'scores' (keys: {sorted(map(str, item))})"
    return type(item).__name__


def _batch_size(settings: RunSettings) -> int:
    size = settings.extra.get("batch_size", DEFAULT_BATCH_SIZE)
    if not isinstance(size, int) or isinstance(size, bool) or size < 1:
        raise RunnerError(f"python runner: batch_size must be a positive integer, got {size!r}")
    return size
