"""`git model add` and `git model evalset add` on real git + DVC repositories with the demo checkpoints.

Happy paths check what DVC itself sees (status, cache) and the lineage written; then one test per bad
input, each asserting the exit code, the key phrase of the message (file / line / field) and that
nothing was tracked or changed: same files, same `git status`, same DVC cache, no new `.dvc` file.
"""
from __future__ import annotations

import hashlib
import io
import json
import re
import os
import shutil
import struct
import tracemalloc
from contextlib import contextmanager
from pathlib import Path

import pytest
from ruamel.yaml import YAML

from conftest import git, snapshot_tree, status_porcelain
from gitmodel import evalsets
from gitmodel.cli import cli
from gitmodel.errors import InvalidEvalSet

MODEL = "models/sentiment.gguf"


# -- helpers ---------------------------------------------------------------------------------------


def md5(path: Path) -> str:
    return hashlib.md5(Path(path).read_bytes()).hexdigest()


def load_yaml(path: Path):
    return YAML(typ="safe", pure=True).load(Path(path).read_text("utf-8"))


def dvc_yaml(repo: Path) -> dict:
    return load_yaml(repo / "dvc.yaml")


def pairs(repo: Path) -> list[tuple[str, str]]:
    """The (model, eval set) pairs of the eval stage, in file order."""
    return [(i["model"], i["evalset"]) for i in dvc_yaml(repo)["stages"]["eval"]["foreach"].values()]


def cache_objects(repo: Path) -> set[str]:
    cache = repo / ".dvc" / "cache"
    return {p.relative_to(cache).as_posix() for p in cache.rglob("*") if p.is_file()} if cache.is_dir() else set()


def in_dvc_cache(repo: Path, digest: str) -> bool:
    obj = repo / ".dvc" / "cache" / "files" / "md5" / digest[:2] / digest[2:]
    return obj.is_file() and md5(obj) == digest


def dvc_status(repo: Path, *targets: str) -> dict:
    """What `dvc status` says, through dvc's own Python API ({} means up to date)."""
    from dvc.repo import Repo

    with Repo(str(repo)) as dvc_repo:
        return dvc_repo.status(targets=[str(repo / t) for t in targets])


def dvc_stages(repo: Path) -> list[str]:
    from dvc.repo import Repo

    with Repo(str(repo)) as dvc_repo:
        return sorted(stage.addressing for stage in dvc_repo.index.stages)


def gguf_reference(path: Path) -> dict:
    """The header facts according to the reference `gguf` package, to cross-check our reader."""
    import gguf

    reader = gguf.GGUFReader(str(path))
    ctx = reader.fields["llama.context_length"]
    return {"parameters": sum(int(t.n_elements) for t in reader.tensors),
            "context_length": int(ctx.parts[ctx.data[0]][0])}


def add(runner, *args: str):
    return runner.invoke(cli, ["add", *args])


def add_evalset(runner, *args: str):
    return runner.invoke(cli, ["evalset", "add", *args])


@contextmanager
def nothing_changes(repo: Path):
    """The proof that a refused command left the repository as it found it."""
    tree, status, cache = snapshot_tree(repo), status_porcelain(repo), cache_objects(repo)
    yield
    after = snapshot_tree(repo)
    assert sorted(after) == sorted(tree), "files appeared or vanished"
    assert after == tree, [k for k in tree if after[k] != tree[k]]
    assert status_porcelain(repo) == status
    assert cache_objects(repo) == cache, "something reached the DVC cache"
    assert not [p for p in after if p.endswith(".dvc") and p not in tree]


def assert_refused(result, *phrases: str, exit_code: int = 3) -> None:
    assert result.exit_code == exit_code, (result.stdout, result.stderr, result.exception)
    assert result.stdout == ""
    assert result.stderr.startswith("Error: ") or exit_code == 2, result.stderr
    for phrase in phrases:
        assert phrase in result.stderr, f"{phrase!r} not in {result.stderr!r}"
    assert "Traceback" not in result.stderr


@pytest.fixture
def demo_md5(demo_dir) -> dict[str, str]:
    return {p.stem: md5(p) for p in demo_dir.iterdir()}


@pytest.fixture
def model_repo(gm_repo, demo_dir) -> Path:
    """An initialised repository with the v1 demo checkpoint at models/sentiment.gguf (untracked)."""
    shutil.copyfile(demo_dir / "sentiment-v1.gguf", gm_repo / MODEL)
    return gm_repo


# -- add: happy paths ------------------------------------------------------------------------------


def test_add_tracks_the_checkpoint_with_its_lineage(runner, model_repo, demo_dir, demo_md5):
    repo = model_repo
    (repo / "data").mkdir()
    (repo / "data" / "train.jsonl").write_text('{"text": "great pizza", "label": "positive"}\n')
    head = git(repo, "rev-parse", "HEAD")

    result = add(runner, MODEL, "--dataset", "data/train.jsonl", "--param", "lr=2e-5", "--param", "epochs=3",
                 "--base-model", "llama-3.2-1b", "--training-duration", "3h")
    assert result.exit_code == 0, result.stderr
    v1 = demo_md5["sentiment-v1"]
    lines = result.stdout.splitlines()
    assert lines[0] == f"Tracked model 'sentiment': {MODEL} (md5 {v1})"
    assert "  params:    lr=2e-05, epochs=3" in lines
    assert "  trained:   10800 s" in lines
    # params.yaml: the model's own (empty) eval.models section, which its pairs depend on
    assert lines[-1] == f"Staged: {MODEL}.dvc models/.gitignore dvc.yaml params.yaml. Next: git commit"
    assert load_yaml(repo / "params.yaml")["eval"]["models"] == {"sentiment": {}}

    # the .dvc file: DVC's out plus our lineage in its meta
    out = load_yaml(repo / f"{MODEL}.dvc")["outs"]
    assert len(out) == 1
    out = out[0]
    assert (out["path"], out["md5"], out["size"]) == ("sentiment.gguf", v1, (demo_dir / "sentiment-v1.gguf").stat().st_size)
    lineage = out["meta"]["lineage"]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", lineage.pop("trained_at"))   # the add time
    data = (repo / "data" / "train.jsonl").read_bytes()
    assert lineage == {
        "dataset": {"path": "data/train.jsonl", "md5": md5(repo / "data" / "train.jsonl"),
                    "lines": data.count(b"\n"), "bytes": len(data)},
        "params": {"lr": 2e-5, "epochs": 3},
        "base_model": "llama-3.2-1b",
        "training_duration_s": 10800,
    }
    assert type(lineage["params"]["lr"]) is float and type(lineage["params"]["epochs"]) is int
    reference = gguf_reference(repo / MODEL)
    assert out["meta"]["gguf"] == {"architecture": "llama", "parameters": reference["parameters"],
                                   "quantization": "F32", "context_length": reference["context_length"],
                                   "gguf_version": 3}

    # dvc.yaml: the artifact; no eval set yet, so no pair
    data = dvc_yaml(repo)
    assert data["artifacts"] == {"sentiment": {
        "path": MODEL, "type": "model",
        "meta": {**out["meta"]["gguf"], "base_model": "llama-3.2-1b"}}}
    assert pairs(repo) == []

    # DVC itself sees the file tracked and up to date, its bytes in the cache
    assert dvc_status(repo, f"{MODEL}.dvc") == {}
    assert in_dvc_cache(repo, v1)
    assert md5(repo / MODEL) == v1
    assert "models/sentiment.gguf.dvc" in dvc_stages(repo)

    # git: staged, the weights ignored, nothing committed
    status = status_porcelain(repo).splitlines()
    assert f"A  {MODEL}.dvc" in status and "A  models/.gitignore" in status and "M  dvc.yaml" in status
    assert not [line for line in status if line.endswith("sentiment.gguf")]
    assert "/sentiment.gguf" in (repo / "models" / ".gitignore").read_text().splitlines()
    assert git(repo, "rev-parse", "HEAD") == head


def test_readd_of_a_changed_checkpoint_updates_the_same_entries(runner, model_repo, demo_dir, demo_md5):
    repo = model_repo
    (repo / "hparams.yaml").write_text("lr: 1.0e-4\nepochs: 2\nscheduler: cosine\n")
    first = runner.invoke(cli, ["add", MODEL, "--params-file", "hparams.yaml", "--base-model", "llama-3.2-1b",
                                "--training-duration", "45m", "--json"])
    assert first.exit_code == 0, first.stderr
    report = json.loads(first.stdout)
    assert (report["name"], report["status"], report["md5"]) == ("sentiment", "added", demo_md5["sentiment-v1"])
    first_trained_at = report["meta"]["lineage"].pop("trained_at")
    assert report["meta"]["lineage"] == {"params": {"lr": 1e-4, "epochs": 2, "scheduler": "cosine"},
                                         "base_model": "llama-3.2-1b", "training_duration_s": 2700}
    git(repo, "add", "hparams.yaml")
    git(repo, "commit", "-q", "-m", "sentiment v1")

    # a dataset DVC tracks: its md5 comes from its .dvc file, not from the workspace bytes
    (repo / "data").mkdir()
    dataset = repo / "data" / "train.jsonl"
    dataset.write_text('{"text": "awful", "label": "negative"}\n')
    from dvc.repo import Repo

    with Repo(str(repo)) as dvc_repo:
        dvc_repo.add([str(dataset)])
    recorded = load_yaml(repo / "data" / "train.jsonl.dvc")["outs"][0]["md5"]
    dataset.write_text('{"text": "edited since dvc add", "label": "positive"}\n')
    assert md5(dataset) != recorded

    shutil.copyfile(demo_dir / "sentiment-v2.gguf", repo / MODEL)
    result = add(runner, str(repo / MODEL), "--dataset", "data/train.jsonl", "--params-file", "hparams.yaml",
                 "--param", "epochs=5", "--training-duration", "5400s")
    assert result.exit_code == 0, result.stderr
    v2 = demo_md5["sentiment-v2"]
    assert result.stdout.splitlines()[0] == f"Updated model 'sentiment': {MODEL} (md5 {v2})"

    out = load_yaml(repo / f"{MODEL}.dvc")["outs"][0]
    assert out["md5"] == v2
    assert out["meta"]["lineage"].pop("trained_at") >= first_trained_at     # new weights: a new time
    # the size of what DVC recorded (one line), not of the edited workspace copy
    assert out["meta"]["lineage"] == {
        "dataset": {"path": "data/train.jsonl", "md5": recorded, "tracked_by": "dvc", "lines": 1,
                    "bytes": len('{"text": "awful", "label": "negative"}\n')},
        "params": {"lr": 1e-4, "epochs": 5, "scheduler": "cosine"},
        "training_duration_s": 5400,
    }
    # the same entries, updated in place: one artifact, no stale base_model
    data = dvc_yaml(repo)
    assert list(data["artifacts"]) == ["sentiment"]
    assert "base_model" not in data["artifacts"]["sentiment"]["meta"]
    assert pairs(repo) == []
    assert sorted(p.name for p in (repo / "models").glob("*.dvc")) == ["sentiment.gguf.dvc"]
    assert status_porcelain(repo).splitlines()[:2] == ["M  dvc.yaml", f"M  {MODEL}.dvc"]
    assert dvc_status(repo, f"{MODEL}.dvc") == {}
    assert in_dvc_cache(repo, v2) and in_dvc_cache(repo, demo_md5["sentiment-v1"])

    # the same command once more: nothing to change
    with nothing_changes(repo):
        again = add(runner, MODEL, "--dataset", "data/train.jsonl", "--params-file", "hparams.yaml",
                    "--param", "epochs=5", "--training-duration", "5400s")
        assert again.exit_code == 0, again.stderr
        assert again.stdout.splitlines()[0] == f"Re-tracked (unchanged) model 'sentiment': {MODEL} (md5 {v2})"


@pytest.mark.parametrize("text, seconds", [("3h", 10800), ("45m", 2700), ("5400s", 5400), ("1h30m", 5400),
                                           ("2d", 172800), ("90", 90), ("1.5h", 5400)])
def test_training_durations_are_stored_in_seconds(text, seconds):
    from gitmodel.lineage import parse_duration

    assert parse_duration(text) == seconds


@pytest.mark.parametrize("value, typed", [("2e-5", 2e-5), ("3", 3), ("0.1", 0.1), ("true", True),
                                          ("adamw", "adamw"), ("2024-01-01", "2024-01-01"), ("", ""),
                                          ("a=b", "a=b")])
def test_param_values_are_typed(value, typed):
    from gitmodel.lineage import parse_params

    got = parse_params([f"k={value}"], None)["k"]
    assert got == typed and type(got) is type(typed)


# -- evalset add: happy path -----------------------------------------------------------------------

SUPPORT = (
    "\n"
    '{"id": "s1", "input": "refund please", "expected": "billing", "labels": ["billing", "tech"], "category": "billing"}\n'
    "   \n"
    '{"id": "s2", "input": "app crashes", "expected": "tech", "labels": ["billing", "tech"]}\n'
    "\n"
    '{"id": "s3", "input": "say hello", "expected": "hello"}\n'
    "\n\n"
)


def test_evalset_add_tracks_it_and_joins_every_model(runner, model_repo, demo_dir):
    repo = model_repo
    assert add(runner, MODEL).exit_code == 0
    shutil.copyfile(demo_dir / "sentiment.jsonl", repo / "evalsets" / "sentiment.jsonl")
    rows = [json.loads(line) for line in (demo_dir / "sentiment.jsonl").read_text().splitlines() if line.strip()]
    categories = sorted({r["category"] for r in rows if "category" in r})
    n_class = sum(1 for r in rows if "labels" in r)

    result = add_evalset(runner, "evalsets/sentiment.jsonl")
    assert result.exit_code == 0, result.stderr
    digest = md5(repo / "evalsets" / "sentiment.jsonl")
    assert result.stdout.splitlines() == [
        f"Tracked eval set 'sentiment': evalsets/sentiment.jsonl (md5 {digest})",
        f"  {len(rows)} examples ({n_class} classification, {len(rows) - n_class} generation); "
        f"categories: {', '.join(categories)}",
        "Evaluated on it (every model: sentiment); `dvc repro` runs 1 new pair",
        "Staged: evalsets/sentiment.jsonl.dvc evalsets/.gitignore dvc.yaml params.yaml. Next: git commit",
    ]
    assert len(rows) >= 300

    # blank lines (leading, inner, whitespace-only, trailing) carry no example and are skipped
    (repo / "evalsets" / "support.jsonl").write_text(SUPPORT)
    result = add_evalset(runner, "evalsets/support.jsonl", "--json")
    assert result.exit_code == 0, result.stderr
    report = json.loads(result.stdout)
    assert (report["name"], report["status"], report["examples"], report["classification"], report["categories"]) == (
        "support", "added", 3, 2, ["billing"])

    assert pairs(repo) == [("sentiment", "sentiment"), ("sentiment", "support")]
    assert load_yaml(repo / "evalsets" / "sentiment.jsonl.dvc")["outs"][0]["md5"] == digest
    assert dvc_status(repo, "evalsets/sentiment.jsonl.dvc", "evalsets/support.jsonl.dvc") == {}
    assert in_dvc_cache(repo, digest)
    assert {"eval@sentiment-sentiment", "eval@sentiment-support"} <= set(dvc_stages(repo))
    status = status_porcelain(repo).splitlines()
    assert "A  evalsets/sentiment.jsonl.dvc" in status and "A  evalsets/support.jsonl.dvc" in status


# -- add: bad inputs, one test each ----------------------------------------------------------------


@pytest.mark.parametrize("name", ["Bad_Name", "my model", "-lead", "trail-", "UPPER", "a.b", "a/b", "a" * 101, ""])
def test_add_refuses_an_invalid_name(runner, model_repo, name):
    # an invalid --name is a usage error (exit 2), checked by the one grammar in refs.py
    with nothing_changes(model_repo):
        result = add(runner, MODEL, "--name", name)
        if len(name) > 100:
            phrase = f"invalid model name '{name[:20]}...': longer than 100 characters"
        elif name:
            phrase = f"invalid model name '{name}': use lowercase letters, digits and '-'"
        else:
            phrase = "invalid model name: it is empty"
        assert_refused(result, f"Error: Invalid value for '--name': {phrase}", exit_code=2)


def test_add_refuses_a_file_stem_with_spaces(runner, model_repo):
    os.rename(model_repo / MODEL, model_repo / "models" / "my model.gguf")
    with nothing_changes(model_repo):
        assert_refused(add(runner, "models/my model.gguf"), "Error: invalid model name 'my model'")


@pytest.mark.parametrize("name, shown", [
    ("a\x1b[31mb", r"a\x1b[31mb"),
    ("a\tb", r"a\tb"),
    ("sentiment\r", r"sentiment\r"),
    ("sentiment\n", r"sentiment\n"),
])
def test_add_refuses_control_characters_in_a_name(runner, model_repo, name, shown):
    with nothing_changes(model_repo):
        result = add(runner, MODEL, "--name", name)
        assert_refused(result, f"invalid model name '{shown}'", exit_code=2)
        assert name not in result.stderr        # shown escaped, never sent raw to the terminal


@pytest.mark.parametrize("where, expected", [
    ("sentiment.gguf", "models/sentiment.gguf"),
    ("models/sub/sentiment.gguf", "models/sentiment.gguf"),
    ("evalsets/sentiment.gguf", "models/sentiment.gguf"),
    ("models/sentiment.bin", "models/sentiment.gguf"),
])
def test_add_refuses_a_path_that_is_not_models_name_gguf(runner, model_repo, where, expected):
    target = model_repo / where
    target.parent.mkdir(parents=True, exist_ok=True)
    os.rename(model_repo / MODEL, target)
    with nothing_changes(model_repo):
        assert_refused(add(runner, where),
                       f"Error: model {where} must live at {expected} (git-model finds models by name)",
                       f"hint: move it: git mv {where} {expected}")


def test_the_git_mv_hint_is_shell_quoted(runner, model_repo, monkeypatch):
    (model_repo / "my weights").mkdir()
    os.rename(model_repo / MODEL, model_repo / "my weights" / "sentiment.gguf")
    monkeypatch.chdir(model_repo / "my weights")         # the hint's paths are the user's, from here
    with nothing_changes(model_repo):
        assert_refused(add(runner, "sentiment.gguf"),
                       "Error: model my weights/sentiment.gguf must live at models/sentiment.gguf",
                       "hint: move it: git mv sentiment.gguf ../models/sentiment.gguf")
    monkeypatch.chdir(model_repo)
    with nothing_changes(model_repo):
        assert_refused(add(runner, "my weights/sentiment.gguf"),
                       "hint: move it: git mv 'my weights/sentiment.gguf' models/sentiment.gguf")


def test_add_refuses_a_name_that_does_not_match_the_file(runner, model_repo):
    with nothing_changes(model_repo):
        assert_refused(add(runner, MODEL, "--name", "chat"), f"Error: model {MODEL} must live at models/chat.gguf")


def test_add_refuses_an_absolute_path_outside_the_repository(runner, model_repo, demo_dir):
    outside = demo_dir / "sentiment-v1.gguf"
    with nothing_changes(model_repo):
        assert_refused(add(runner, str(outside)), f"Error: model {outside} is outside the repository {model_repo}",
                       "hint: copy it into the repository first")
    assert not Path(str(outside) + ".dvc").exists()


@pytest.mark.parametrize("path", ["models/../models/sentiment.gguf", "../repo/models/sentiment.gguf",
                                  "models/sub/../sentiment.gguf"])
def test_add_reads_dotdot_as_git_does(runner, model_repo, path):
    (model_repo / "models" / "sub").mkdir()
    result = add(runner, path)
    assert result.exit_code == 0, result.stderr
    assert (model_repo / f"{MODEL}.dvc").is_file()


def test_add_from_a_subdirectory_with_dotdot(runner, model_repo, monkeypatch):
    """From a subfolder, ../models/x.gguf is a path inside the repository: resolved as git does."""
    (model_repo / "notebooks").mkdir()
    monkeypatch.chdir(model_repo / "notebooks")
    result = add(runner, f"../{MODEL}")
    assert result.exit_code == 0, result.stderr
    assert f"Tracked model 'sentiment': {MODEL}" in result.stdout
    assert "A  models/sentiment.gguf.dvc" in status_porcelain(model_repo).splitlines()


def test_evalset_add_from_a_subdirectory_with_dotdot(runner, gm_repo, monkeypatch):
    (gm_repo / "evalsets" / "support.jsonl").write_bytes(OK)
    monkeypatch.chdir(gm_repo / "models")
    result = add_evalset(runner, "../evalsets/support.jsonl")
    assert result.exit_code == 0, result.stderr
    assert (gm_repo / "evalsets" / "support.jsonl.dvc").is_file()


def test_add_refuses_dotdot_that_leaves_the_repository(runner, model_repo, monkeypatch):
    (model_repo / "notebooks").mkdir()
    monkeypatch.chdir(model_repo / "notebooks")
    with nothing_changes(model_repo):
        assert_refused(add(runner, "../../elsewhere/x.gguf"), "Error: model ../../elsewhere/x.gguf is outside the repository")


def test_add_refuses_dotdot_after_a_symlinked_folder(runner, model_repo, tmp_path):
    # link/.. is wherever the link points, not the repository root the text suggests
    outside = tmp_path / "outside" / "deep"
    outside.mkdir(parents=True)
    (model_repo / "link").symlink_to(outside, target_is_directory=True)
    with nothing_changes(model_repo):
        assert_refused(add(runner, f"link/../{MODEL}"), f"Error: model link/../{MODEL}: '..' after the symlink link")


@pytest.mark.parametrize("command", ["add", "evalset add"])
def test_a_file_name_longer_than_the_file_system_allows_is_an_error(runner, gm_repo, command):
    folder, suffix = ("models", ".gguf") if command == "add" else ("evalsets", ".jsonl")
    path = f"{folder}/{'x' * 300}{suffix}"
    with nothing_changes(gm_repo):
        result = runner.invoke(cli, [*command.split(), path])
        assert_refused(result, f"is {300 + len(suffix)} bytes long; the file system allows 255",
                       "hint: give the file a shorter name")


def test_a_path_longer_than_the_file_system_allows_is_an_error(runner, gm_repo):
    path = "/".join(["models", *["d" * 200] * 25, "x.gguf"])       # each part fits, the whole does not
    with nothing_changes(gm_repo):
        assert_refused(add(runner, path), "File name too long")


def test_add_refuses_a_symlinked_parent_folder(runner, model_repo, demo_dir):
    (model_repo / "models" / "link").symlink_to(demo_dir, target_is_directory=True)
    with nothing_changes(model_repo):
        assert_refused(add(runner, "models/link/sentiment-v1.gguf"),
                       f"Error: model models/link/sentiment-v1.gguf is under a symlinked folder (models/link -> {demo_dir})")
    assert not (demo_dir / "sentiment-v1.gguf.dvc").exists() and not (demo_dir / ".gitignore").exists()


def test_add_refuses_a_symlinked_file(runner, gm_repo, demo_dir):
    (gm_repo / MODEL).symlink_to(demo_dir / "sentiment-v1.gguf")
    with nothing_changes(gm_repo):
        assert_refused(add(runner, MODEL), f"Error: model {MODEL} is a symlink (models/sentiment.gguf -> ")


def test_add_refuses_a_missing_file(runner, gm_repo):
    with nothing_changes(gm_repo):
        assert_refused(add(runner, MODEL), f"Error: model {MODEL}: no such file")


def test_add_refuses_a_folder_as_usage_error(runner, gm_repo):
    (gm_repo / MODEL).mkdir()
    with nothing_changes(gm_repo):
        assert_refused(add(runner, MODEL), "Invalid value for 'PATH'", "is a directory", exit_code=2)


def gguf_error(repo: Path, problem: str) -> str:
    return f"Error: {repo / MODEL}: not a valid GGUF file: {problem}"


def test_add_refuses_a_text_file(runner, gm_repo):
    (gm_repo / MODEL).write_text("this is not a checkpoint\n")
    with nothing_changes(gm_repo):
        assert_refused(add(runner, MODEL), gguf_error(gm_repo, "bad magic b'this' (expected b'GGUF') (at byte 0)"),
                       "hint: check that the file is a complete GGUF checkpoint")


def test_add_refuses_an_empty_file(runner, gm_repo):
    (gm_repo / MODEL).write_bytes(b"")
    with nothing_changes(gm_repo):
        assert_refused(add(runner, MODEL), gguf_error(gm_repo, "file is empty"))


@pytest.mark.parametrize("keep, problem", [
    (1000, "overruns the file"),
    (20, "truncated header: the file has 20 bytes, the fixed header alone takes 24"),
    (-1, "lies outside the file"),
])
def test_add_refuses_a_truncated_gguf(runner, gm_repo, demo_dir, keep, problem):
    data = (demo_dir / "sentiment-v1.gguf").read_bytes()
    (gm_repo / MODEL).write_bytes(data[:keep])
    with nothing_changes(gm_repo):
        assert_refused(add(runner, MODEL), gguf_error(gm_repo, ""), problem)


def test_add_refuses_bad_magic(runner, gm_repo, demo_dir):
    data = (demo_dir / "sentiment-v1.gguf").read_bytes()
    (gm_repo / MODEL).write_bytes(b"GGUX" + data[4:])
    with nothing_changes(gm_repo):
        assert_refused(add(runner, MODEL), gguf_error(gm_repo, "bad magic b'GGUX' (expected b'GGUF') (at byte 0)"))


def test_add_refuses_gguf_version_1(runner, gm_repo, demo_dir):
    data = (demo_dir / "sentiment-v1.gguf").read_bytes()
    (gm_repo / MODEL).write_bytes(data[:4] + struct.pack("<I", 1) + data[8:])
    with nothing_changes(gm_repo):
        assert_refused(add(runner, MODEL), gguf_error(gm_repo, "unsupported version 1 (supported: 2, 3) (at byte 4)"))


def test_add_refuses_a_repository_without_git_model_init(runner, git_repo, demo_dir):
    (git_repo / "models").mkdir()
    shutil.copyfile(demo_dir / "sentiment-v1.gguf", git_repo / MODEL)
    with nothing_changes(git_repo):
        assert_refused(add(runner, MODEL),
                       f"Error: {git_repo} is not a git-model repository (no dvc.yaml or .dvc/)",
                       "hint: run `git model init` first")
    assert not (git_repo / ".dvc").exists() and not (git_repo / "dvc.yaml").exists()


@pytest.mark.parametrize("pair", ["lr", "=3", " =3"])
def test_add_refuses_a_param_without_key_and_value(runner, model_repo, pair):
    with nothing_changes(model_repo):
        assert_refused(add(runner, MODEL, "--param", "epochs=3", "--param", pair),
                       f"Error: invalid --param {pair!r}: expected KEY=VALUE")


@pytest.mark.parametrize("duration", ["soon", "3 weeks", "-1h", "h", "1h30"])
def test_add_refuses_a_bad_training_duration(runner, model_repo, duration):
    with nothing_changes(model_repo):
        assert_refused(add(runner, MODEL, "--training-duration", duration),
                       "Error: invalid --training-duration", "use e.g. 3h, 45m, 5400s or 1h30m")


def test_add_refuses_a_missing_dataset(runner, model_repo):
    with nothing_changes(model_repo):
        assert_refused(add(runner, MODEL, "--dataset", "data/nope.jsonl"), "Error: --dataset data/nope.jsonl: no such file")


def test_add_refuses_a_dataset_folder_dvc_does_not_track(runner, model_repo):
    (model_repo / "data").mkdir()
    (model_repo / "data" / "a.txt").write_text("a\n")
    with nothing_changes(model_repo):
        assert_refused(add(runner, MODEL, "--dataset", "data"),
                       "Error: --dataset data is a folder that DVC does not track", "hint: run `dvc add data` first")


@pytest.mark.parametrize("text, problem", [
    ("- lr\n- epochs\n", "expected a mapping of hyperparameters"),
    ("just a string\n", "expected a mapping of hyperparameters"),
    ("", "expected a mapping of hyperparameters"),
    ("lr: [unclosed\n", "not valid YAML"),
])
def test_add_refuses_a_params_file_that_is_not_a_mapping(runner, model_repo, text, problem):
    (model_repo / "hparams.yaml").write_text(text)
    with nothing_changes(model_repo):
        assert_refused(add(runner, MODEL, "--params-file", "hparams.yaml"), f"Error: --params-file hparams.yaml: {problem}")


def test_add_refuses_a_missing_params_file(runner, model_repo):
    with nothing_changes(model_repo):
        assert_refused(add(runner, MODEL, "--params-file", "nope.yaml"), "Error: --params-file nope.yaml: no such file")


def test_add_of_a_checkpoint_git_already_tracks_rolls_back(runner, model_repo):
    # DVC itself refuses here, after our checks passed: the rollback must undo whatever it started
    git(model_repo, "add", MODEL)
    git(model_repo, "commit", "-q", "-m", "weights straight in git")
    with nothing_changes(model_repo):
        assert_refused(add(runner, MODEL, "--param", "lr=1"), f"Error: dvc could not track {model_repo / MODEL}",
                       "already tracked by SCM")


def test_add_refuses_a_dvc_yaml_that_is_not_a_mapping(runner, model_repo):
    # DVC refuses it while tracking (after our checks): the rollback must leave no trace
    (model_repo / "dvc.yaml").write_text("- not\n- a mapping\n")
    git(model_repo, "commit", "-q", "-am", "broken dvc.yaml")
    with nothing_changes(model_repo):
        assert_refused(add(runner, MODEL), "dvc.yaml")


# -- evalset add: bad inputs, one test each --------------------------------------------------------

OK = b'{"id": "a", "input": "fine"}\n'
BAD_EVALSETS = {
    "malformed-json": (OK + b'{"id": "b", "input": \n', 2, "malformed JSON: Expecting value"),
    "malformed-json-after-blank-lines": (b"\n\n" + b'{"id": "a" "input": "x"}\n', 3, "malformed JSON: Expecting ','"),
    "not-an-object": (b'["a", "b"]\n', 1, "expected a JSON object, got list"),
    "missing-id": (OK + b'{"input": "x"}\n', 2, "missing required field 'id'"),
    "missing-input": (b'{"id": "a"}\n', 1, "missing required field 'input'"),
    "id-is-a-number": (b'{"id": 5, "input": "x"}\n', 1, "field 'id': expected string, got int 5"),
    "empty-id": (b'{"id": "", "input": "x"}\n', 1, "field 'id': must not be empty"),
    "input-is-null": (b'{"id": "a", "input": null}\n', 1, "field 'input': expected string, got NoneType null"),
    "labels-not-a-list": (b'{"id": "a", "input": "x", "labels": "yes"}\n', 1,
                          "field 'labels': expected array, got str \"yes\""),
    "label-not-a-string": (b'{"id": "a", "input": "x", "labels": ["yes", 1]}\n', 1,
                           "field 'labels.1': expected string, got int 1"),
    "duplicate-ids": (OK + b'{"id": "b", "input": "x"}\n' + b'{"id": "a", "input": "again"}\n', 3,
                      "field 'id': duplicate id 'a' (first used on line 1)"),
    "expected-not-among-labels": (b'{"id": "a", "input": "x", "expected": "maybe", "labels": ["yes", "no"]}\n', 1,
                                  "field 'expected': 'maybe' is not among labels ['yes', 'no']"),
    "one-label": (b'{"id": "a", "input": "x", "labels": ["yes"]}\n', 1, "field 'labels': needs at least 2 labels"),
    "repeated-labels": (b'{"id": "a", "input": "x", "labels": ["yes", "yes"]}\n', 1,
                        "field 'labels': labels must be unique"),
    "non-utf8": (OK + b'{"id": "b", "input": "caf\xe9"}\n', 2, "not valid UTF-8 (byte 0xe9 at column 26)"),
    "duplicate-key": (OK + b'{"id": "b", "input": "x", "expected": "yes", "expected": "no"}\n', 2,
                      "duplicate key 'expected' at column 46 (first at column 27)"),
    "duplicate-key-with-labels": (b'{"id": "b", "input": "x", "labels": ["yes", "no"], "input": "y"}\n', 1,
                                  "duplicate key 'input' at column 52 (first at column 13)"),
    "lone-surrogate-in-input": (OK + b'{"id": "b", "input": "x \\ud800"}\n', 2,
                                "field 'input': a lone surrogate \\ud800 is not a character"),
    "lone-surrogate-in-id": (b'{"id": "\\udc00", "input": "x"}\n', 1,
                             "field 'id': a lone surrogate \\udc00 is not a character"),
    "lone-surrogate-in-a-label": (b'{"id": "a", "input": "x", "labels": ["yes", "\\ud800"]}\n', 1,
                                  "field 'labels[1]': a lone surrogate \\ud800 is not a character"),
    "unterminated-string": (b'{"id": "a", "input": "x\n', 1, "malformed JSON: Unterminated string starting at column 22"),
    "empty-file": (b"", None, "the eval set is empty (no examples)"),
    "only-blank-lines": (b"\n  \n\n", None, "the eval set is empty (no examples)"),
}


@pytest.mark.parametrize("case", list(BAD_EVALSETS), ids=list(BAD_EVALSETS))
def test_evalset_add_refuses_a_bad_line(runner, gm_repo, case):
    content, line, problem = BAD_EVALSETS[case]
    path = gm_repo / "evalsets" / "bad.jsonl"
    path.write_bytes(content)
    where = f"{path}:{line}" if line else f"{path}"
    with nothing_changes(gm_repo):
        assert_refused(add_evalset(runner, "evalsets/bad.jsonl"), f"Error: {where}: {problem}")


def test_a_duplicate_key_or_lone_surrogate_names_the_way_out(runner, gm_repo):
    (gm_repo / "evalsets" / "bad.jsonl").write_bytes(b'{"id": "a", "input": "x", "id": "b"}\n')
    result = add_evalset(runner, "evalsets/bad.jsonl")
    assert result.exit_code == 3
    assert "hint: keep one of the two" in result.stderr
    (gm_repo / "evalsets" / "bad.jsonl").write_bytes(b'{"id": "a", "input": "\\ud800"}\n')
    result = add_evalset(runner, "evalsets/bad.jsonl")
    assert result.exit_code == 3
    assert "hint: write the character itself, or a complete surrogate pair" in result.stderr


def test_evalset_add_of_one_example_says_1_example(runner, gm_repo):
    (gm_repo / "evalsets" / "one.jsonl").write_bytes(b'{"id": "a", "input": "x", "labels": ["p", "n"]}\n')
    result = add_evalset(runner, "evalsets/one.jsonl")
    assert result.exit_code == 0, result.stderr
    assert "  1 example (1 classification, 0 generation)\n" in result.stdout


def test_evalset_add_refuses_a_path_outside_evalsets(runner, gm_repo):
    (gm_repo / "support.jsonl").write_bytes(OK)
    with nothing_changes(gm_repo):
        assert_refused(add_evalset(runner, "support.jsonl"),
                       "Error: eval set support.jsonl must live at evalsets/support.jsonl")


def test_evalset_add_refuses_an_invalid_name(runner, gm_repo):
    (gm_repo / "evalsets" / "Support_Set.jsonl").write_bytes(OK)
    with nothing_changes(gm_repo):
        assert_refused(add_evalset(runner, "evalsets/Support_Set.jsonl"), "Error: invalid eval set name 'Support_Set'")


def test_evalset_add_refuses_a_missing_file(runner, gm_repo):
    with nothing_changes(gm_repo):
        assert_refused(add_evalset(runner, "evalsets/nope.jsonl"), "Error: eval set evalsets/nope.jsonl: no such file")


@pytest.fixture
def capped_repo(gm_repo) -> Path:
    """eval.max_line_bytes set to 100 in params.yaml, committed."""
    params = gm_repo / "params.yaml"
    params.write_text(params.read_text().replace("max_line_bytes: 1048576", "max_line_bytes: 100"))
    assert "max_line_bytes: 100 " in params.read_text()
    git(gm_repo, "commit", "-q", "-am", "cap eval set lines at 100 bytes")
    return gm_repo


def line_of(n_bytes: int, ending: bytes = b"\n") -> bytes:
    head, tail = b'{"id": "long", "input": "', b'"}'
    return head + b"x" * (n_bytes - len(head) - len(tail)) + tail + ending


def test_evalset_add_refuses_a_line_over_the_cap_from_params_yaml(runner, capped_repo):
    path = capped_repo / "evalsets" / "long.jsonl"
    path.write_bytes(OK + line_of(101))
    with nothing_changes(capped_repo):
        assert_refused(add_evalset(runner, "evalsets/long.jsonl"), f"Error: {path}:2: line is longer than 100 bytes",
                       "hint: raise eval.max_line_bytes in params.yaml")


def test_evalset_add_refuses_a_bad_cap_in_params_yaml(runner, gm_repo):
    params = gm_repo / "params.yaml"
    params.write_text(params.read_text().replace("max_line_bytes: 1048576", "max_line_bytes: big"))
    (gm_repo / "evalsets" / "ok.jsonl").write_bytes(OK)
    with nothing_changes(gm_repo):
        assert_refused(add_evalset(runner, "evalsets/ok.jsonl"), "eval.max_line_bytes must be int, got 'big'")


def test_evalset_add_refuses_a_negative_cap_in_params_yaml(runner, gm_repo):
    params = gm_repo / "params.yaml"
    params.write_text(params.read_text().replace("max_line_bytes: 1048576", "max_line_bytes: -1"))
    (gm_repo / "evalsets" / "ok.jsonl").write_bytes(OK)
    with nothing_changes(gm_repo):
        assert_refused(add_evalset(runner, "evalsets/ok.jsonl"), "eval.max_line_bytes")


@pytest.mark.parametrize("ending", [b"\n", b""], ids=["newline", "last-line"])
def test_a_line_of_exactly_the_cap_is_accepted(tmp_path, ending):
    path = tmp_path / "x.jsonl"
    path.write_bytes(OK + line_of(100, ending))
    assert [e.id for e in evalsets.load(path, max_line_bytes=100)] == ["a", "long"]
    path.write_bytes(OK + line_of(101, ending))
    with pytest.raises(InvalidEvalSet, match=r":2: line is longer than 100 bytes"):
        evalsets.load(path, max_line_bytes=100)


def test_a_crlf_line_of_exactly_the_cap_is_accepted(tmp_path):
    path = tmp_path / "x.jsonl"
    path.write_bytes(line_of(100, b"\r\n") + OK.replace(b"\n", b"\r\n"))
    assert [e.id for e in evalsets.load(path, max_line_bytes=100)] == ["long", "a"]


class CountingFile(io.BufferedReader):
    """A file that remembers how many bytes each read handed back."""

    sizes: list[int]
    os_position: int = 0     # how far the OS file offset went: what really left the disk

    def readline(self, limit=-1):
        data = super().readline(limit)
        self.sizes.append(len(data))
        self.os_position = max(self.os_position, self.raw.tell())
        return data

    def read(self, n=-1):
        data = super().read(n)
        self.sizes.append(len(data))
        self.os_position = max(self.os_position, self.raw.tell())
        return data

    def __iter__(self):  # line iteration would bypass readline's limit
        raise AssertionError("the eval set must be read with a bounded readline")


def test_a_50_mb_line_is_refused_without_reading_it_whole(runner, gm_repo, monkeypatch):
    path = gm_repo / "evalsets" / "huge.jsonl"
    size = 50 * 1024 * 1024
    with open(path, "wb") as f:
        f.write(OK + b'{"id": "huge", "input": "')
        chunk = b"a" * (1 << 20)
        for _ in range(50):
            f.write(chunk)
        f.write(b'"}\n')
    cap = evalsets.DEFAULT_MAX_LINE_BYTES
    opened: list[CountingFile] = []

    def counting_open(file, mode="r", *args, **kwargs):
        assert mode == "rb", mode
        f = CountingFile(io.FileIO(file, "rb"))
        f.sizes = []
        opened.append(f)
        return f

    monkeypatch.setattr(evalsets, "open", counting_open, raising=False)
    evalsets._validator()   # warm up: the schema and jsonschema's import are not the line
    with nothing_changes(gm_repo):
        tracemalloc.start()
        try:
            result = add_evalset(runner, "evalsets/huge.jsonl")
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert_refused(result, f"Error: {path}:2: line is longer than {cap} bytes")

    assert len(opened) == 1
    f = opened[0]
    assert f.sizes[0] == len(OK)
    # the long line: one bounded read, at most cap + 1 bytes (+ 1 would still let a CRLF end be told apart)
    assert f.sizes[1:] and max(f.sizes[1:]) <= cap + 2 and sum(f.sizes[1:]) <= cap + 2, f.sizes
    # what the OS handed over: the bounded read plus at most a buffer's worth, nowhere near 50 MB
    assert f.os_position <= len(OK) + cap + 2 + 64 * 1024
    assert peak < 8 * cap < size // 6, f"peak {peak} bytes while refusing a {size}-byte line"


def test_re_adding_the_same_weights_with_new_lineage_says_so(runner, gm_repo, demo_dir):
    shutil.copy(demo_dir / "sentiment-v1.gguf", gm_repo / "models/sentiment.gguf")
    assert runner.invoke(cli, ["add", "models/sentiment.gguf"]).exit_code == 0
    result = runner.invoke(cli, ["add", "models/sentiment.gguf", "--base-model", "llama-3.2-1b"])
    assert result.exit_code == 0, result.stderr
    assert result.stdout.startswith("Same weights, new lineage for model 'sentiment'")
    assert "base_model: llama-3.2-1b" in (gm_repo / "models/sentiment.gguf.dvc").read_text()


def test_trained_at_is_given_or_kept_for_the_same_weights(runner, gm_repo, demo_dir):
    shutil.copy(demo_dir / "sentiment-v1.gguf", gm_repo / "models/sentiment.gguf")
    first = runner.invoke(cli, ["add", "models/sentiment.gguf", "--trained-at", "2026-10-01", "--json"])
    assert json.loads(first.stdout)["meta"]["lineage"]["trained_at"] == "2026-10-01T00:00:00Z"
    again = runner.invoke(cli, ["add", "models/sentiment.gguf", "--json"])
    assert json.loads(again.stdout)["status"] == "unchanged"
    assert json.loads(again.stdout)["meta"]["lineage"]["trained_at"] == "2026-10-01T00:00:00Z"
    bad = runner.invoke(cli, ["add", "models/sentiment.gguf", "--trained-at", "last week"])
    assert bad.exit_code == 3 and "invalid --trained-at 'last week'" in bad.stderr
