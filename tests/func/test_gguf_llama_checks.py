"""Files llama.cpp aborts on are refused by `git model add`, and a crash is the file's fault.

Each bad input is a demo checkpoint with one field changed, so the rest of the
file stays what llama.cpp loads. The child-process first load is tested with
real crashes: the content checks are switched off (the only mock: it injects
the fault, a file our checks would refuse) so that llama.cpp really aborts.
"""
from __future__ import annotations

import shutil
import subprocess
import struct
import time
from contextlib import contextmanager
from pathlib import Path

import pytest

from conftest import snapshot_tree, status_porcelain
from gitmodel import gguf_checks, loadcheck
from gitmodel.cli import cli
from gitmodel.errors import CheckpointCrashes, RunnerError
from gitmodel.gguf import read_info
from gitmodel.runners import RunSettings, make_runner

MODEL = "models/sentiment.gguf"


def add(runner, *args: str):
    return runner.invoke(cli, ["add", *args])


@contextmanager
def nothing_changes(repo: Path):
    tree, status = snapshot_tree(repo), status_porcelain(repo)
    yield
    assert snapshot_tree(repo) == tree
    assert status_porcelain(repo) == status
    assert not (repo / (MODEL + ".dvc")).exists()


def assert_refused(result, *phrases: str) -> None:
    assert result.exit_code == 3, (result.stdout, result.stderr, result.exception)
    assert result.stdout == ""
    assert result.stderr.startswith("Error: "), result.stderr
    for phrase in phrases:
        assert phrase in result.stderr, f"{phrase!r} not in {result.stderr!r}"
    assert "Traceback" not in result.stderr and "signal 6" not in result.stderr.split("\n")[0][:20]


def value_offset(path: Path, key: str) -> int:
    return read_info(path).value_spans[key][1]


def token_positions(data: bytes, start: int) -> list[tuple[int, int]]:
    """(offset of the length field, length) of every token of the array at ``start``."""
    (count,) = struct.unpack_from("<Q", data, start + 4)
    positions, pos = [], start + 12
    for _ in range(count):
        (length,) = struct.unpack_from("<Q", data, pos)
        positions.append((pos, length))
        pos += 8 + length
    return positions


def with_duplicate_token(source: Path, target: Path) -> tuple[int, int]:
    """Copy ``source`` with token <0x0B> overwritten by <0x0A> (same length); their indices."""
    data = bytearray(source.read_bytes())
    start = value_offset(source, "tokenizer.ggml.tokens")
    positions = token_positions(bytes(data), start)
    texts = [bytes(data[pos + 8:pos + 8 + length]) for pos, length in positions]
    first, second = texts.index(b"<0x0A>"), texts.index(b"<0x0B>")
    pos = positions[second][0]
    data[pos + 8:pos + 14] = b"<0x0A>"
    target.write_bytes(data)
    return first, second


@pytest.fixture
def demo_v1(demo_dir) -> Path:
    return demo_dir / "sentiment-v1.gguf"


# -- bad input, each refused by `git model add` with the key and index named -------------------


def test_add_refuses_a_vocabulary_with_a_duplicated_token(runner, gm_repo, demo_v1):
    first, second = with_duplicate_token(demo_v1, gm_repo / MODEL)
    offset = token_positions(demo_v1.read_bytes(), value_offset(demo_v1, "tokenizer.ggml.tokens"))[second][0]
    with nothing_changes(gm_repo):
        assert_refused(add(runner, MODEL),
                       f"{gm_repo / MODEL}: not a valid GGUF file: key 'tokenizer.ggml.tokens': token {second} "
                       f"repeats token {first} ('<0x0A>'): llama.cpp aborts on a vocabulary whose strings are not "
                       f"unique (at byte {offset})")


def test_add_refuses_scores_shorter_than_the_tokens(runner, gm_repo, demo_v1):
    data = bytearray(demo_v1.read_bytes())
    info = read_info(demo_v1)
    start = info.value_spans["tokenizer.ggml.scores"][1]
    (n,) = struct.unpack_from("<Q", data, start + 4)
    # One score fewer, the header padded back so the tensor data stays where it was.
    struct.pack_into("<Q", data, start + 4, n - 1)
    cut = start + 12 + 4 * (n - 1)
    del data[cut:cut + 4]
    data[info.data_offset - 4:info.data_offset - 4] = bytes(4)
    (gm_repo / MODEL).write_bytes(data)
    with nothing_changes(gm_repo):
        assert_refused(add(runner, MODEL),
                       f"key 'tokenizer.ggml.scores': {n - 1} entries for {n} tokens: index {n - 1} (token ",
                       f"(at byte {start + 4})")


@pytest.mark.parametrize("key", ["bos", "eos"])
def test_add_refuses_a_bos_or_eos_id_beyond_the_vocabulary(runner, gm_repo, demo_v1, key):
    data = bytearray(demo_v1.read_bytes())
    info = read_info(demo_v1)
    n = info.metadata["tokenizer.ggml.tokens"].length
    offset = info.value_spans[f"tokenizer.ggml.{key}_token_id"][1]
    struct.pack_into("<I", data, offset, n + 5)
    (gm_repo / MODEL).write_bytes(data)
    with nothing_changes(gm_repo):
        assert_refused(add(runner, MODEL),
                       f"key 'tokenizer.ggml.{key}_token_id': token id {n + 5} is outside the vocabulary of {n} "
                       f"tokens (ids 0 to {n - 1}) (at byte {offset})")


def test_add_refuses_an_unknown_architecture_naming_it(runner, gm_repo, demo_v1):
    data = demo_v1.read_bytes()
    length = struct.pack("<Q", 5)
    (gm_repo / MODEL).write_bytes(data.replace(length + b"llama", length + b"zzzzz", 1))
    with nothing_changes(gm_repo):
        assert_refused(add(runner, MODEL), "key 'general.architecture': unknown model architecture 'zzzzz': "
                                           "the installed llama.cpp supports")


# -- a crash in the first load is reported as the checkpoint's fault, and remembered ------------


@pytest.fixture
def unchecked(monkeypatch):
    """Switch the content checks off, so that a file they would refuse reaches llama.cpp."""
    monkeypatch.setattr(gguf_checks, "check_for_llama_cpp", lambda info, file: None)


def test_add_reports_a_llama_cpp_abort_as_the_files_fault_and_remembers_it(runner, gm_repo, demo_v1,
                                                                          unchecked, monkeypatch):
    with_duplicate_token(demo_v1, gm_repo / MODEL)
    with nothing_changes(gm_repo):
        result = add(runner, MODEL)
    assert_refused(result, f"Error: {gm_repo / MODEL}: llama.cpp cannot load this checkpoint safely: a test load in "
                           "a child process died of signal 6 (SIGABRT): llama-vocab.cpp:",
                   "GGML_ASSERT(id_to_token.size() == token_to_id.size()) failed",
                   "hint: the file is damaged or made for another llama.cpp")
    memory = (gm_repo / ".dvc/tmp/gitmodel/loadcheck.json").read_text()
    assert '"status": "crashed"' in memory

    # The same md5 again: refused from memory, without loading it.
    def no_child(*args, **kwargs):
        raise AssertionError("the remembered crash was loaded again")

    monkeypatch.setattr(loadcheck, "run_in_child", no_child)
    with nothing_changes(gm_repo):
        assert_refused(add(runner, MODEL), "died of signal 6 (SIGABRT)", "(remembered from its first load)")


def test_the_llama_runner_loads_a_crashing_checkpoint_in_a_child_first(tmp_path, demo_v1, unchecked):
    model = tmp_path / "crash.gguf"
    with_duplicate_token(demo_v1, model)
    with pytest.raises(CheckpointCrashes) as caught:
        make_runner("llama", settings=RunSettings(), model_path=model)
    assert str(caught.value).startswith(f"{model}: llama.cpp cannot load this checkpoint safely: a test load in a "
                                        "child process died of signal 6 (SIGABRT)")


def test_a_good_checkpoint_is_loaded_in_a_child_once_then_in_process(gm_repo, demo_v1, monkeypatch):
    shutil.copyfile(demo_v1, gm_repo / MODEL)
    children = []
    real = loadcheck.run_in_child

    def counted(*args, **kwargs):
        children.append(args)
        return real(*args, **kwargs)

    monkeypatch.setattr(loadcheck, "run_in_child", counted)
    for _ in range(2):
        with make_runner("llama", settings=RunSettings(), model_path=gm_repo / MODEL) as model:
            assert model.predict([])  == []
    assert len(children) == 1
    assert '"status": "loaded"' in (gm_repo / ".dvc/tmp/gitmodel/loadcheck.json").read_text()


def test_a_checkpoint_llama_cpp_refuses_cleanly_is_an_error_with_its_reason(tmp_path, demo_v1):
    data = demo_v1.read_bytes()
    model = tmp_path / "renamed.gguf"
    # A tensor renamed: the file is well-formed, llama.cpp misses a tensor and says so.
    model.write_bytes(data.replace(b"output_norm.weight", b"output_norx.weight", 1))
    outcome = loadcheck.run_in_child(model)
    assert outcome.status == loadcheck.REFUSED
    assert "output_norm.weight" in outcome.detail, outcome


def test_the_first_load_costs_a_fraction_of_a_second_on_the_demo(demo_v1):
    started = time.perf_counter()
    outcome = loadcheck.run_in_child(demo_v1)
    assert outcome.status == loadcheck.LOADED
    assert time.perf_counter() - started < 5.0   # ~0.3 s alone: a fresh Python importing llama_cpp


@pytest.mark.parametrize("first_load", ["child", "in-process"])
def test_the_llama_runner_quotes_llama_cpps_reason_not_its_last_log_line(tmp_path, demo_v1, monkeypatch, first_load):
    if first_load == "in-process":   # as if the child had loaded it: the runner's own error path
        monkeypatch.setattr(loadcheck, "ensure_loads", lambda *args, **kwargs: None)
    model = tmp_path / "zzzzz.gguf"
    length = struct.pack("<Q", 5)
    model.write_bytes(demo_v1.read_bytes().replace(length + b"llama", length + b"zzzzz", 1))
    with pytest.raises(RunnerError) as caught:
        make_runner("llama", settings=RunSettings(), model_path=model)
    assert str(caught.value) == (f"{model}: llama.cpp could not load the model: llama_model_load: error loading "
                                 "model: unknown model architecture: 'zzzzz'")


# -- eval of a file tracked behind git-model's back ---------------------------------------------


@pytest.fixture
def tracked_crasher(registry, demo_v1) -> Path:
    """models/crash.gguf, a demo checkpoint with a duplicated token, tracked with plain `dvc add`."""
    with_duplicate_token(demo_v1, registry / "models/crash.gguf")
    subprocess.run(["dvc", "add", "models/crash.gguf"], cwd=registry, check=True, capture_output=True)
    return registry


def test_eval_of_a_vocabulary_with_a_duplicated_token_is_an_error_not_a_signal(runner, tracked_crasher):
    result = runner.invoke(cli, ["eval", "crash", "--evalset", "sentiment"])
    assert_refused(result, "models/crash.gguf: not a valid GGUF file: key 'tokenizer.ggml.tokens': token 14 repeats "
                           "token 13 ('<0x0A>')")


def test_eval_reports_a_llama_cpp_abort_as_the_checkpoints_fault(runner, tracked_crasher, unchecked):
    result = runner.invoke(cli, ["eval", "crash", "--evalset", "sentiment"])
    assert_refused(result, "models/crash.gguf: llama.cpp cannot load this checkpoint safely: a test load in a child "
                           "process died of signal 6 (SIGABRT)")
    assert not (tracked_crasher / "metrics/crash").exists()
