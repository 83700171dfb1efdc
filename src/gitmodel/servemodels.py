"""The checkpoints a server runs: materialised by md5 from the DVC cache, checked, loaded once.

A served version's weights are the object whose md5 its release tracks. They are copied from the
local DVC cache (fetched from the default DVC remote when the cache lacks them) into a cache folder
of the server's own, named by md5, hashed on the way and renamed into place only when the md5 is
right: the workspace is never read or written, so a checkout, a `dvc checkout` or a rollback under a
running server changes nothing it serves. Our GGUF reader and llama.cpp's load check in a child run
before llama.cpp loads the file in-process.

A loaded model answers one request at a time (a llama.cpp context is not thread-safe) and is
reference-counted: a request holds it from start to end, so a switch to another version never
closes the weights under a request still using them.
"""
from __future__ import annotations

import hashlib
import math
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path

from gitmodel import fsutil, gguf, remotes, resultfiles, store
from gitmodel.errors import GitModelError, RunnerError
from gitmodel.runners.base import RunSettings

COPY_CHUNK = 1 << 20
_quiet_callback = None    # kept alive for as long as llama.cpp may call it


def _quiet_llama(llama_cpp) -> None:
    """llama.cpp logs to stderr by default; a server's stderr is for what an operator must read."""
    global _quiet_callback
    if _quiet_callback is None:
        import ctypes

        _quiet_callback = llama_cpp.llama_log_callback(lambda level, text, user_data: None)
        llama_cpp.llama_log_set(_quiet_callback, ctypes.c_void_p(0))


def materialise(root: Path, md5: str, cache_folder: Path) -> Path:
    """The file ``<cache_folder>/<md5>.gguf`` holding exactly the object ``md5`` of the repository's
    DVC cache (or its default remote). Raises DvcError when neither holds it, GitModelError on an
    md5 mismatch, InvalidGGUF when the bytes are not a GGUF file our reader accepts."""
    target = Path(cache_folder) / f"{md5}.gguf"
    if not target.is_file():
        source = store.cache_path(root, md5)
        if not source.is_file():
            source = remotes.fetch_object(root, md5)
        target.parent.mkdir(parents=True, exist_ok=True)
        temp = target.with_name(f"{fsutil.temp_prefix()}{md5}.gguf")
        digest = hashlib.md5()
        try:
            with open(source, "rb") as src, open(temp, "wb") as dst:
                for chunk in iter(lambda: src.read(COPY_CHUNK), b""):
                    digest.update(chunk)
                    dst.write(chunk)
                dst.flush()
                os.fsync(dst.fileno())
            if digest.hexdigest() != md5:
                raise GitModelError(f"the DVC cache object {source} does not have md5 {md5} "
                                    f"(its bytes hash to {digest.hexdigest()})",
                                    hint="the cache is damaged: remove the object and `dvc fetch` it again")
            os.replace(temp, target)
        finally:
            temp.unlink(missing_ok=True)
    gguf.read_info(target)
    return target



@dataclass
class Completion:
    text: str
    prompt_tokens: int
    completion_tokens: int
    finish_reason: str
    label: str | None = None          # the answer, when it is one of the version's labels
    confidence: float | None = None   # that label's probability among the labels, as the eval scores it


class PromptTooLong(GitModelError):
    """The prompt does not fit the context the model is loaded with."""


@dataclass(eq=False)
class LoadedModel:
    """One checkpoint in llama.cpp, loaded once, shared by the arms that serve it."""

    md5: str
    path: Path
    settings: RunSettings            # the eval-time settings its release's results were measured with
    labels: tuple[str, ...] = ()     # the labels its eval sets score: an output that is one is a label
    _runner: object = field(default=None, repr=False)     # the eval's llama runner over the checkpoint
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _users: int = 0
    _retired: bool = False

    @classmethod
    def load(cls, path: Path, md5: str, settings: RunSettings, labels=()) -> "LoadedModel":
        """Load ``path`` (already materialised and checked) with llama.cpp. RunnerError when it refuses;
        CheckpointCrashes when loading it kills a child process."""
        try:
            import llama_cpp
        except ImportError as e:
            raise RunnerError(f"serving needs llama-cpp-python: {e}", hint="pip install 'git-model[serve]'") from e
        from gitmodel.runners.llama import LlamaRunner

        runner = LlamaRunner(path, settings, md5=md5)
        _quiet_llama(llama_cpp)
        return cls(md5, path, settings, tuple(labels), runner)

    def complete(self, prompt: str, *, max_tokens: int, temperature: float, seed: int,
                 stop: list[str] | None) -> Completion:
        """Greedy at temperature 0 (seeded sampling above it), as the eval runs generate. An answer that
        is one of the version's labels gets its confidence as the eval scores it: the softmax of the
        labels' log-probabilities after the prompt, by the eval's own runner."""
        with self._lock:
            runner = self._runner
            if runner is None:
                raise RunnerError(f"the model {self.md5} was closed")
            try:
                answer = runner.llm.create_completion(prompt, max_tokens=max_tokens, temperature=temperature,
                                                      seed=seed, stop=stop or None)
            except ValueError as e:      # llama-cpp-python's "Requested tokens ... exceed context window"
                raise PromptTooLong(str(e)) from None
            choice = answer["choices"][0]
            text = choice.get("text") or ""
            label = text.strip() if text.strip() in self.labels else None
            confidence = self._confidence(runner, prompt, label) if label is not None else None
        usage = answer.get("usage") or {}
        return Completion(text, int(usage.get("prompt_tokens") or 0), int(usage.get("completion_tokens") or 0),
                          choice.get("finish_reason") or "stop", label, confidence)

    def _confidence(self, runner, prompt: str, label: str) -> float | None:
        from gitmodel.runners.base import Example

        runner.forget_cache()            # the completion moved llama.cpp's cache under the runner
        try:
            [scored] = runner.predict([Example(id="request", input=prompt, labels=self.labels)])
        except GitModelError:            # a prompt the labels cannot follow: the answer stands, unscored
            return None
        finally:
            runner.llm.reset()           # and the scoring moved it under llama-cpp-python's completions
        if not scored.scores:
            return None
        # P(label) among the labels; rounded as the eval's outputs record it, so the same input logs the same
        probability = math.exp(scored.scores[label] - max(scored.scores.values())) * scored.confidence
        return round(probability, resultfiles.OUTPUT_DECIMALS)

    # -- sharing between requests and versions ----------------------------------------------------

    def acquire(self) -> None:
        self._users += 1      # under the deployment's lock

    def release(self) -> bool:
        """One user fewer; True when the model was retired and nobody uses it any more (close it)."""
        self._users -= 1
        return self._retired and self._users == 0

    def retire(self) -> bool:
        """No arm serves it any more; True when nobody uses it either (close it now)."""
        self._retired = True
        return self._users == 0

    def close(self) -> None:
        with self._lock:
            if self._runner is not None:
                self._runner.close()
                self._runner = None
