"""Checkpoints for the server: materialised by md5 from the DVC cache, checked; shared by requests."""
from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from gitmodel import params, servemodels, store
from gitmodel.errors import DvcError, GitModelError, InvalidGGUF
from gitmodel.runners.base import RunSettings, available_cores


def cached(root: Path, data: bytes, md5: str | None = None) -> str:
    md5 = md5 or hashlib.md5(data).hexdigest()
    path = store.cache_path(root, md5)
    path.parent.mkdir(parents=True)
    path.write_bytes(data)
    return md5


def test_an_object_whose_bytes_are_not_its_md5_is_refused_and_nothing_is_left(tmp_path):
    (tmp_path / ".dvc").mkdir()
    md5 = cached(tmp_path, b"GGUF damaged", md5="0" * 32)
    with pytest.raises(GitModelError) as e:
        servemodels.materialise(tmp_path, md5, tmp_path / "serve")
    assert e.value.message.endswith(f"does not have md5 {md5} (its bytes hash to "
                                    f"{hashlib.md5(b'GGUF damaged').hexdigest()})")
    assert list((tmp_path / "serve").iterdir()) == []


def test_an_object_that_is_not_gguf_is_refused_by_our_reader(tmp_path):
    (tmp_path / ".dvc").mkdir()
    md5 = cached(tmp_path, b"not a checkpoint at all")
    with pytest.raises(InvalidGGUF):
        servemodels.materialise(tmp_path, md5, tmp_path / "serve")


def test_an_object_in_no_cache_and_no_remote_is_named(tmp_path):
    (tmp_path / ".dvc").mkdir()
    with pytest.raises(DvcError) as e:
        servemodels.materialise(tmp_path, "1" * 32, tmp_path / "serve")
    assert "object 11111111111111111111111111111111 is not in the local DVC cache" in e.value.message


def test_a_retired_model_closes_only_when_its_last_request_ends():
    model = servemodels.LoadedModel("a" * 32, Path("x.gguf"), RunSettings())
    model.acquire()
    model.acquire()
    assert model.retire() is False          # requests still hold it
    assert model.release() is False
    assert model.release() is True          # the last one out closes it
    idle = servemodels.LoadedModel("b" * 32, Path("y.gguf"), RunSettings())
    assert idle.retire() is True


def test_settings_come_from_the_recorded_eval_params():
    recorded = dict(params.EVAL_DEFAULTS, n_ctx=512, temperature=0.7, seed=3, max_tokens=9, n_threads=0)
    settings = RunSettings.from_params(recorded)
    assert (settings.n_ctx, settings.temperature, settings.seed, settings.max_tokens) == (512, 0.7, 3, 9)
    assert settings.n_threads == available_cores()        # 0: every core, as the eval ran
    assert settings.label_prefix == " " and settings.special is False
