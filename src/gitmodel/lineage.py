"""Lineage of a checkpoint: how it was made. Parsing and validation only."""
from __future__ import annotations

import re
from pathlib import Path

from gitmodel.errors import GitModelError, InvalidParams

_DURATION_RE = re.compile(r"^\s*(?:(\d+(?:\.\d+)?)\s*d)?\s*(?:(\d+(?:\.\d+)?)\s*h)?\s*(?:(\d+(?:\.\d+)?)\s*m)?\s*(?:(\d+(?:\.\d+)?)\s*s)?\s*$")


def parse_duration(text: str) -> int:
    """'3h', '45m', '5400s', '1h30m', '2d' or plain seconds -> whole seconds."""
    text = str(text).strip().lower()
    if re.fullmatch(r"\d+(?:\.\d+)?", text):
        return round(float(text))
    m = _DURATION_RE.match(text)
    if not text or not m or not any(m.groups()):
        raise InvalidParams(f"invalid --training-duration {text!r}: use e.g. 3h, 45m, 5400s or 1h30m")
    d, h, mi, s = (float(g) if g else 0.0 for g in m.groups())
    return round(d * 86400 + h * 3600 + mi * 60 + s)


def _typed(value: str):
    """'2e-5' -> 2e-05, '3' -> 3, 'true' -> True, anything else stays a string (YAML rules)."""
    from ruamel.yaml import YAML
    from ruamel.yaml.error import YAMLError

    try:
        parsed = YAML(typ="safe", pure=True).load(value)
    except YAMLError:
        return value
    if isinstance(parsed, (int, float, bool, str)) and parsed is not None:
        # YAML 1.2 reads "2e-5" as a string; a float is what was meant.
        if isinstance(parsed, str):
            try:
                return float(parsed) if re.fullmatch(r"[-+]?\d*\.?\d+[eE][-+]?\d+", parsed) else parsed
            except ValueError:
                return parsed
        return parsed
    return value


def parse_params(pairs: tuple[str, ...] | list[str], params_file: Path | None) -> dict:
    """Hyperparameters from ``--params-file`` (YAML mapping), then ``--param k=v`` over it."""
    params: dict = {}
    if params_file is not None:
        from ruamel.yaml import YAML, YAMLError

        from gitmodel.yamlio import describe

        path = Path(params_file)
        if not path.is_file():
            raise InvalidParams(f"--params-file {path}: no such file")
        try:
            data = YAML(typ="safe", pure=True).load(path.read_text("utf-8"))
        except (YAMLError, UnicodeDecodeError) as e:
            raise InvalidParams(f"--params-file {path}: not valid YAML: {describe(e)}") from None
        if not isinstance(data, dict):
            raise InvalidParams(f"--params-file {path}: expected a mapping of hyperparameters (e.g. `lr: 2e-5`)")
        params.update(data)
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise InvalidParams(f"invalid --param {pair!r}: expected KEY=VALUE, e.g. --param lr=2e-5")
        params[key.strip()] = _typed(value.strip())
    return params


def dataset_entry(root: Path, dataset: Path, md5_of) -> dict:
    """{"path", "md5"} of a training dataset: from its .dvc file when DVC tracks it, else hashed."""
    from gitmodel import store

    dataset = Path(dataset)
    absolute = dataset if dataset.is_absolute() else Path.cwd() / dataset
    try:
        shown = absolute.resolve().relative_to(root.resolve()).as_posix()
    except ValueError:
        shown = str(absolute.resolve())
    dvc_file = Path(str(absolute) + ".dvc")
    if dvc_file.is_file():
        out = store.parse_dvc_file(dvc_file.read_text("utf-8"), dvc_file)
        if out is None or not out.md5:
            raise GitModelError(f"--dataset {dataset}: {dvc_file} records no md5",
                                hint=f"run `dvc add {dataset}` again")
        # counted in the bytes DVC recorded (its cache object), not in a workspace copy edited since
        cached = store.cache_path(root, out.md5)
        size = dataset_size(cached, out.size) if cached.is_file() else \
            ({"bytes": out.size} if out.size is not None else {})
        return {"path": shown, "md5": out.md5, "tracked_by": "dvc", **size}
    if absolute.is_dir():
        raise GitModelError(f"--dataset {dataset} is a folder that DVC does not track",
                            hint=f"run `dvc add {dataset}` first, so it has an md5")
    if not absolute.is_file():
        raise GitModelError(f"--dataset {dataset}: no such file")
    return {"path": shown, "md5": md5_of(absolute), **dataset_size(absolute)}


def dataset_size(path: Path, recorded_bytes: int | None = None) -> dict:
    """{"lines", "bytes"} of a dataset file (bytes only for a folder): how much labelled data a checkpoint
    was trained on, so that `retrain-check` can tell how much has come in since."""
    path = Path(path)
    if path.is_file():
        lines = 0
        with open(path, "rb") as stream:
            for block in iter(lambda: stream.read(1 << 20), b""):
                lines += block.count(b"\n")
        return {"lines": lines, "bytes": path.stat().st_size}
    if path.is_dir():
        return {"bytes": recorded_bytes if recorded_bytes is not None else
                sum(p.stat().st_size for p in path.rglob("*") if p.is_file())}
    return {} if recorded_bytes is None else {"bytes": recorded_bytes}


def parse_trained_at(text: str) -> str:
    """``--trained-at``: an ISO 8601 date or time, recorded as UTC ``YYYY-MM-DDTHH:MM:SSZ``."""
    from datetime import datetime, timezone

    raw = str(text).strip()
    try:
        moment = datetime.fromisoformat(raw[:-1] + "+00:00" if raw.endswith("Z") else raw)
    except ValueError:
        raise InvalidParams(f"invalid --trained-at {text!r}: use an ISO 8601 date or time, e.g. 2026-11-02 "
                            "or 2026-11-02T14:00:00Z") from None
    moment = moment.replace(tzinfo=timezone.utc) if moment.tzinfo is None else moment.astimezone(timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def now_utc() -> str:
    from datetime import datetime, timezone

    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
