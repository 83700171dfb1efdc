"""The first load of a checkpoint runs in a child process.

:mod:`gitmodel.gguf_checks` refuses what we know llama.cpp aborts on; this is
the net under it. llama.cpp kills the process it runs in when an assertion
fails, so the first time a checkpoint (an md5) meets this llama.cpp, a child
process loads it, creates a small context, tokenizes a probe text and decodes
it. A child that dies of a signal (or hangs) makes the checkpoint's fault an
error naming the file instead of "git-model died of signal 6"; the verdict is
remembered under ``.dvc/tmp/gitmodel/`` per llama.cpp version, so later loads
of a good checkpoint go straight to the in-process runner, and a crashing one
is refused at once.

Run as ``python -m gitmodel.loadcheck FILE [--vocab-only] [--n-ctx N]``: exit
0 when llama.cpp loads the file, 3 with llama.cpp's reason on stderr when it
refuses it cleanly.
"""
from __future__ import annotations

import ctypes
import importlib.util
import json
import os
import re
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from gitmodel import project
from gitmodel.errors import CheckpointCrashes, RunnerError
from gitmodel.fsutil import HashCache

MEMORY_FILE = "loadcheck.json"
# Text that walks the tokenizer's common paths: words, a newline (llama.cpp
# looks for its token), bytes outside most vocabularies (byte fallback), and
# special-token text.
PROBE_TEXT = "Hello world\n\tcaf\u00e9 \u2581 \U0001f600 <s></s><|endoftext|>[CLS]"
DEFAULT_N_CTX = 256
# A load maps the file and touches little of it: generous per-byte allowance.
_BASE_TIMEOUT_S = 120.0
_BYTES_PER_SECOND = 50 * 1024 * 1024
EXIT_LOADED, EXIT_REFUSED = 0, 3

LOADED, REFUSED, CRASHED = "loaded", "refused", "crashed"


@dataclass(frozen=True)
class Outcome:
    status: str          # LOADED, REFUSED or CRASHED
    detail: str          # llama.cpp's reason, or how the child died
    seconds: float


def ensure_loads(path: str | os.PathLike[str], *, md5: str | None = None, root: Path | None = None,
                 n_ctx: int = DEFAULT_N_CTX) -> Outcome | None:
    """Prove llama.cpp survives loading ``path`` before it is loaded in-process.

    Returns None when a remembered verdict says the file loads, else the
    child's outcome. Raises :class:`CheckpointCrashes` when the child died or
    hung (now or before), and RunnerError when llama.cpp refused the file.
    """
    path = Path(path)
    if importlib.util.find_spec("llama_cpp") is None:
        return None   # no llama.cpp here: nothing can crash (the llama runner says what is missing)
    root = root if root is not None else _repository_root(path)
    memory = _Memory(root / project.STATE_DIR / MEMORY_FILE if root is not None else None)
    if md5 is None:
        md5 = (project.hash_cache(root) if root is not None else HashCache(None)).md5(path)
    known = memory.get(md5)
    if known is not None and known["status"] == LOADED:
        return None
    if known is not None and known["status"] == CRASHED:
        raise CheckpointCrashes(path, known["detail"], remembered=True)
    outcome = run_in_child(path, n_ctx=n_ctx)
    if outcome.status == REFUSED:
        raise RunnerError(f"{path}: llama.cpp could not load the model: {outcome.detail}",
                          hint="check that the file is a GGUF checkpoint this llama.cpp supports")
    memory.put(md5, outcome)
    if outcome.status == CRASHED:
        raise CheckpointCrashes(path, outcome.detail, remembered=False)
    return outcome


def run_in_child(path: str | os.PathLike[str], *, vocab_only: bool = False, n_ctx: int = DEFAULT_N_CTX,
                 timeout: float | None = None) -> Outcome:
    """Load ``path`` with llama.cpp in a fresh Python process and report how it went."""
    path = Path(path)
    if timeout is None:
        timeout = _BASE_TIMEOUT_S + path.stat().st_size / _BYTES_PER_SECOND
    command = [sys.executable, "-m", "gitmodel.loadcheck", str(path), "--n-ctx", str(n_ctx)]
    if vocab_only:
        command.append("--vocab-only")
    start = time.perf_counter()
    try:
        done = subprocess.run(command, capture_output=True, timeout=timeout, stdin=subprocess.DEVNULL,
                              env=dict(os.environ, GGML_NO_BACKTRACE="1"))
    except subprocess.TimeoutExpired:
        return Outcome(CRASHED, f"did not finish loading within {timeout:.0f} s", time.perf_counter() - start)
    seconds = time.perf_counter() - start
    if done.returncode == EXIT_LOADED:
        return Outcome(LOADED, "", seconds)
    stderr = done.stderr.decode("utf-8", "replace")
    if done.returncode < 0:
        return Outcome(CRASHED, f"died of {_signal_name(-done.returncode)}{_last_words(stderr)}", seconds)
    lines = stderr.strip().splitlines()
    reason = lines[-1] if lines else f"exit status {done.returncode}"
    if done.returncode != EXIT_REFUSED:
        return Outcome(CRASHED, f"exited with status {done.returncode} ({reason})", seconds)
    return Outcome(REFUSED, reason, seconds)


def run_forked(path: str | os.PathLike[str], *, vocab_only: bool = False, n_ctx: int = DEFAULT_N_CTX,
               timeout: float = 60.0) -> Outcome:
    """As :func:`run_in_child`, in a fork of this process: for fuzzers, which load
    thousands of files. The caller must hold no threads (llama.cpp creates its
    own only inside a context) and have imported llama_cpp already."""
    start = time.perf_counter()
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:   # the child: never returns
        os.close(read_end)
        # ggml writes an assertion to stderr just before it aborts: into the pipe.
        os.dup2(write_end, 2)
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, 1)
        os.environ["GGML_NO_BACKTRACE"] = "1"
        code = EXIT_REFUSED
        try:
            probe(path, vocab_only=vocab_only, n_ctx=n_ctx)
            code = EXIT_LOADED
        except LoadRefused as refused:
            os.write(write_end, str(refused).encode("utf-8", "replace")[:4000])
        except BaseException as error:   # noqa: BLE001 - reported, not raised: this is a forked child
            os.write(write_end, f"{type(error).__name__}: {error}".encode("utf-8", "replace")[:4000])
            code = 4
        os._exit(code)
    os.close(write_end)
    deadline = start + timeout
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        if time.perf_counter() > deadline:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            os.close(read_end)
            return Outcome(CRASHED, f"did not finish loading within {timeout:.0f} s", time.perf_counter() - start)
        time.sleep(0.002)
    with os.fdopen(read_end, "rb") as pipe:
        reason = pipe.read().decode("utf-8", "replace")
    seconds = time.perf_counter() - start
    if os.WIFSIGNALED(status):
        return Outcome(CRASHED, f"died of {_signal_name(os.WTERMSIG(status))}{_last_words(reason)}", seconds)
    code = os.WEXITSTATUS(status)
    if code == EXIT_LOADED:
        return Outcome(LOADED, "", seconds)
    if code == EXIT_REFUSED:
        return Outcome(REFUSED, reason, seconds)
    return Outcome(CRASHED, f"exited with status {code} ({reason})", seconds)


class LoadRefused(Exception):
    """llama.cpp refused the file with an error (no crash)."""


def probe(path: str | os.PathLike[str], *, vocab_only: bool = False, n_ctx: int = DEFAULT_N_CTX) -> None:
    """Load, tokenize, detokenize and (unless ``vocab_only``) decode, as a runner would.

    Meant for a child process: a llama.cpp assertion kills the caller.
    """
    import llama_cpp

    errors: list[str] = []

    def keep(level: int, text: bytes, _user_data) -> None:
        if level == 4 and text:   # GGML_LOG_LEVEL_ERROR
            line = text.decode("utf-8", "replace").strip()
            if line:
                errors.append(line)

    callback = llama_cpp.llama_log_callback(keep)
    llama_cpp.llama_log_set(callback, ctypes.c_void_p(0))
    llama_cpp.llama_backend_init()
    params = llama_cpp.llama_model_default_params()
    params.vocab_only = vocab_only
    params.n_gpu_layers = 0
    model = llama_cpp.llama_model_load_from_file(os.fsencode(path), params)
    if not model:
        raise LoadRefused(_reason(errors, "llama.cpp could not load the model"))
    vocab = llama_cpp.llama_model_get_vocab(model)
    text = PROBE_TEXT.encode("utf-8")
    buffer = (llama_cpp.llama_token * 512)()
    n = llama_cpp.llama_tokenize(vocab, text, len(text), buffer, len(buffer), True, True)
    if n < 0:
        raise LoadRefused(f"the tokenizer needs {-n} tokens for a {len(text)}-byte text")
    piece = ctypes.create_string_buffer(256)
    for token in buffer[:n]:
        llama_cpp.llama_token_to_piece(vocab, token, piece, len(piece), 0, True)
    if vocab_only or n == 0:
        return
    context_params = llama_cpp.llama_context_default_params()
    context_params.n_ctx = n_ctx
    context_params.n_batch = n_ctx
    context_params.n_threads = context_params.n_threads_batch = 1
    context = llama_cpp.llama_init_from_model(model, context_params)
    if not context:
        raise LoadRefused(_reason(errors, "llama.cpp could not create a context"))
    n = min(n, n_ctx)
    status = llama_cpp.llama_decode(context, llama_cpp.llama_batch_get_one(buffer, n))
    if status != 0:
        raise LoadRefused(_reason(errors, f"llama_decode returned {status}"))


def _reason(errors: list[str], fallback: str) -> str:
    """llama.cpp's own reason: the 'error loading model' line if there is one."""
    for line in errors:
        if "error loading model" in line or "unknown model architecture" in line:
            return line
    return errors[-1] if errors else fallback


def _last_words(stderr: str) -> str:
    """The assertion (or uncaught exception) llama.cpp printed as it died, if any."""
    for line in reversed(stderr.splitlines()):
        if re.search(r"\.(cpp|c|h):\d+: |terminate called|what\(\):", line):
            # the build's source path says nothing to the user: keep the file name
            return ": " + re.sub(r"\S*/([^/\s]+:\d+:)", r"\1", line.strip())
    return ""


def _signal_name(number: int) -> str:
    try:
        return f"signal {number} ({signal.Signals(number).name})"
    except ValueError:
        return f"signal {number}"


def _repository_root(path: Path) -> Path | None:
    """The repository holding ``path``: the nearest parent with a ``.dvc`` folder."""
    for parent in path.resolve().parents:
        if (parent / ".dvc").is_dir():
            return parent
    return None


def _llama_version() -> str:
    from importlib import metadata

    try:
        return "llama-cpp-python " + metadata.version("llama-cpp-python")
    except metadata.PackageNotFoundError:
        return "unknown"


class _Memory:
    """Verdicts by md5, per llama.cpp version: a new build deserves a new try."""

    def __init__(self, store: Path | None):
        self.store = store
        self.version = _llama_version()

    def _load(self) -> dict:
        if self.store is None or not self.store.is_file():
            return {}
        try:
            data = json.loads(self.store.read_text("utf-8"))
        except (ValueError, OSError):
            return {}   # a damaged memory only costs a child-process load
        return data if isinstance(data, dict) else {}

    def get(self, md5: str) -> dict | None:
        entry = self._load().get(self.version, {}).get(md5)
        return entry if isinstance(entry, dict) and entry.get("status") in (LOADED, CRASHED) else None

    def put(self, md5: str, outcome: Outcome) -> None:
        if self.store is None:
            return
        from gitmodel.fsutil import atomic_write

        data = self._load()
        verdicts = data.setdefault(self.version, {})
        if not isinstance(verdicts, dict):
            verdicts = data[self.version] = {}
        verdicts[md5] = {"status": outcome.status, "detail": outcome.detail}
        try:
            self.store.parent.mkdir(parents=True, exist_ok=True)
            atomic_write(self.store, json.dumps(data, indent=1, sort_keys=True))
        except OSError:
            pass   # no memory: the next load is checked again, nothing worse


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="python -m gitmodel.loadcheck")
    parser.add_argument("path")
    parser.add_argument("--vocab-only", action="store_true")
    parser.add_argument("--n-ctx", type=int, default=DEFAULT_N_CTX)
    args = parser.parse_args(argv)
    try:
        probe(args.path, vocab_only=args.vocab_only, n_ctx=args.n_ctx)
    except LoadRefused as refused:
        print(refused, file=sys.stderr)
        return EXIT_REFUSED
    return EXIT_LOADED


if __name__ == "__main__":
    sys.exit(main())
