"""``git model weights-diff``: what changed inside a checkpoint, between two GGUF files.

Metadata keys added, removed and changed, with the chat template and the tokenizer called out by name
(a template change silently changes every answer of a chat model: it comes as a unified diff); tensors
added, removed, re-shaped or re-typed (quantisation); for the tensors of both files, how far their
values moved (:mod:`tensordiff`, one slice at a time through memory maps), ranked, and summed per
block. Files of different architectures get the metadata diff only: their tensors do not correspond.
The metadata comparison is pure (:func:`metadata_changes`); :func:`weights_diff` reads the files.
"""
from __future__ import annotations

import difflib
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gitmodel import gguf
from gitmodel.checkpoints import Checkpoint
from gitmodel.gguf import ArraySummary, GGUFInfo, StringSummary

CHAT_TEMPLATE = "tokenizer.chat_template"     # and tokenizer.chat_template.<name> for named templates
TOKENIZER = "tokenizer."
_BLOCK = re.compile(r"^(blk\.\d+)\.")

ADDED, REMOVED, CHANGED = "added", "removed", "changed"
IDENTICAL, MOVED, RESHAPED, RETYPED, BYTES = "identical", "changed", "reshaped", "retyped", "bytes differ"


def is_chat_template(key: str) -> bool:
    return key == CHAT_TEMPLATE or key.startswith(CHAT_TEMPLATE + ".")


@dataclass
class MetaChange:
    """One metadata key that differs."""

    key: str
    change: str                     # added | removed | changed
    old: Any = None                 # as shown: a scalar, a short list, or a summary text
    new: Any = None
    unified_diff: list[str] | None = None     # for text values (the chat template): the lines of `diff -u`

    @property
    def area(self) -> str:
        return "chat template" if is_chat_template(self.key) else "tokenizer" if self.key.startswith(TOKENIZER) \
            else "metadata"

    def to_dict(self) -> dict:
        return {"key": self.key, "change": self.change, "area": self.area, "old": self.old, "new": self.new,
                "unified_diff": self.unified_diff}


@dataclass
class TensorChange:
    """One tensor, as the two files hold it."""

    name: str
    status: str                     # identical | changed | added | removed | reshaped | retyped | bytes differ
    old_type: str | None = None
    new_type: str | None = None
    old_shape: list[int] | None = None
    new_shape: list[int] | None = None
    relative_l2: float | None = None
    cosine: float | None = None
    max_abs_diff: float | None = None
    note: str = ""                  # e.g. "type IQ4_NL: compared by bytes"
    sums: Any = field(default=None, repr=False)    # tensordiff.Sums, for the per-block totals

    def to_dict(self) -> dict:
        return {"name": self.name, "status": self.status, "old_type": self.old_type, "new_type": self.new_type,
                "old_shape": self.old_shape, "new_shape": self.new_shape, "relative_l2": finite(self.relative_l2),
                "cosine": finite(self.cosine), "max_abs_diff": finite(self.max_abs_diff), "note": self.note or None}


def finite(value: float | None) -> float | None:
    """A number JSON can hold: a tensor holding inf or NaN gives sums that are neither (shown as null)."""
    return value if value is None or math.isfinite(value) else None


@dataclass
class BlockChange:
    """The tensors of one block (``blk.N``, or a tensor outside the blocks) taken together."""

    block: str
    tensors: int
    moved: int                      # tensors whose values changed
    relative_l2: float | None       # ‖b − a‖ / ‖a‖ over the block's compared tensors
    max_abs_diff: float

    def to_dict(self) -> dict:
        return {"block": self.block, "tensors": self.tensors, "moved": self.moved,
                "relative_l2": finite(self.relative_l2), "max_abs_diff": finite(self.max_abs_diff)}


@dataclass
class Side:
    checkpoint: Checkpoint
    info: GGUFInfo

    def to_dict(self) -> dict:
        return {**self.checkpoint.to_dict(), "architecture": self.info.architecture,
                "quantization": self.info.quantization, "tensors": len(self.info.tensors),
                "parameters": self.info.parameter_count, "file_size": self.info.file_size}


@dataclass
class WeightsDiff:
    old: Side
    new: Side
    metadata: list[MetaChange]
    tensors: list[TensorChange]               # every tensor of either file, most moved first
    blocks: list[BlockChange]                 # most moved first
    tensors_compared: bool                    # False for files of different architectures
    reason: str = ""                          # why the tensors were not compared

    @property
    def chat_template(self) -> list[MetaChange]:
        return [m for m in self.metadata if m.area == "chat template"]

    @property
    def tokenizer(self) -> list[MetaChange]:
        return [m for m in self.metadata if m.area == "tokenizer"]

    @property
    def moved(self) -> list[TensorChange]:
        return [t for t in self.tensors if t.status != IDENTICAL]

    @property
    def tensor_data_identical(self) -> bool | None:
        """Whether every tensor has the same name, type, shape and bytes in both (None: not compared)."""
        return None if not self.tensors_compared else not self.moved

    def count(self, status: str) -> int:
        return sum(1 for t in self.tensors if t.status == status)

    def to_dict(self, top: int | None = None) -> dict:
        tensors = self.tensors if top is None else self.moved[:top]
        return {"old": self.old.to_dict(), "new": self.new.to_dict(), "tensors_compared": self.tensors_compared,
                "reason": self.reason or None, "tensor_data_identical": self.tensor_data_identical,
                "chat_template_changed": bool(self.chat_template),
                "tokenizer_changed": [m.key for m in self.tokenizer],
                "counts": {s: self.count(s) for s in (IDENTICAL, MOVED, ADDED, REMOVED, RESHAPED, RETYPED, BYTES)},
                "metadata": [m.to_dict() for m in self.metadata],
                "tensors": [t.to_dict() for t in tensors],
                "blocks": [b.to_dict() for b in self.blocks]}


# ----------------------------------------------------------------------------- metadata, pure

SHOWN_CHARS = 120


def shown(value: Any) -> Any:
    """A metadata value as a diff shows it: scalars as they are, long ones summarised."""
    if isinstance(value, ArraySummary):
        return f"[{value.length} × {value.type_name}]"
    if isinstance(value, StringSummary):
        return f"<string of {value.length} bytes>"
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, list):
        text = repr(value)
        return value if len(text) <= SHOWN_CHARS else f"[{len(value)} items] {text[:SHOWN_CHARS - 20]}…"
    if isinstance(value, str) and len(value) > SHOWN_CHARS:
        return value[:SHOWN_CHARS - 1] + "…"
    return value


def _text_diff(old: str, new: str, key: str) -> list[str]:
    return [line.rstrip("\n") for line in difflib.unified_diff(
        old.splitlines(keepends=True), new.splitlines(keepends=True), f"a/{key}", f"b/{key}")]


def metadata_changes(old: dict, new: dict, same_bytes=None) -> list[MetaChange]:
    """The keys added, removed and changed from ``old`` to ``new`` (two GGUF metadata dicts), chat
    template and tokenizer first. Values kept only as summaries are equal when ``same_bytes(key)``
    says their raw bytes are (without it, when their summaries are)."""
    changes = []
    for key in list(old) + [k for k in new if k not in old]:
        if key not in new:
            changes.append(MetaChange(key, REMOVED, shown(old[key])))
        elif key not in old:
            changes.append(MetaChange(key, ADDED, None, shown(new[key])))
        else:
            a, b = old[key], new[key]
            summarised = isinstance(a, (ArraySummary, StringSummary)) or isinstance(b, (ArraySummary, StringSummary))
            equal = (same_bytes(key) if same_bytes and type(a) is type(b) else a == b) if summarised else \
                (a == b and type(a) is type(b)) or _both_nan(a, b)
            if not equal:
                unified = _text_diff(a, b, key) if isinstance(a, str) and isinstance(b, str) and (
                    is_chat_template(key) or "\n" in a or "\n" in b) else None
                changes.append(MetaChange(key, CHANGED, shown(a), shown(b), unified))
    for change in changes:
        if change.unified_diff is None and is_chat_template(change.key):
            text_old = old.get(change.key) if isinstance(old.get(change.key), str) else ""
            text_new = new.get(change.key) if isinstance(new.get(change.key), str) else ""
            change.unified_diff = _text_diff(text_old, text_new, change.key)
    order = {"chat template": 0, "tokenizer": 1, "metadata": 2}
    return sorted(changes, key=lambda c: order[c.area])


def _both_nan(a, b) -> bool:
    return isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b)


# ----------------------------------------------------------------------------- tensors


def _shape(t: gguf.TensorInfo) -> list[int]:
    return list(t.dims)


def block_of(name: str) -> str:
    """``blk.3`` for ``blk.3.attn_q.weight``; a tensor outside the blocks is its own (``output``)."""
    match = _BLOCK.match(name)
    return match.group(1) if match else name.rsplit(".", 1)[0] if name.endswith((".weight", ".bias")) else name


def _compare(a: gguf.TensorData, ta, b: gguf.TensorData, tb) -> TensorChange:
    from gitmodel import tensordiff

    change = TensorChange(ta.name, IDENTICAL, ta.type_name, tb.type_name, _shape(ta), _shape(tb))
    if ta.dims != tb.dims:
        change.status = RESHAPED
        return change
    if ta.ggml_type == tb.ggml_type and tensordiff.same_bytes(a, ta, b, tb):
        change.sums = tensordiff.Sums()
        change.relative_l2, change.cosine, change.max_abs_diff = 0.0, 1.0, 0.0
        return change
    change.status = MOVED if ta.ggml_type == tb.ggml_type else RETYPED
    unreadable = [t.type_name for t in (ta, tb) if not tensordiff.can_dequantise(t.ggml_type)]
    if unreadable:
        names = " and ".join(dict.fromkeys(unreadable))
        if ta.ggml_type == tb.ggml_type:
            change.status = BYTES
            change.note = f"type {names}: compared by bytes"
        else:
            change.note = f"type {names}: cannot be dequantised here, values not compared"
        return change
    sums = tensordiff.compare_values(a, ta, b, tb)
    change.sums = sums
    change.relative_l2, change.cosine, change.max_abs_diff = sums.relative_l2, sums.cosine, sums.max_abs
    if change.status == MOVED and sums.dd == 0:
        change.note = "bytes differ, values equal (e.g. -0.0 and 0.0, or NaN payloads)"
    return change


def _blocks(changes: list[TensorChange]) -> list[BlockChange]:
    from gitmodel.tensordiff import Sums

    grouped: dict[str, list[TensorChange]] = {}
    for change in changes:
        grouped.setdefault(block_of(change.name), []).append(change)
    blocks = []
    for name, members in grouped.items():
        total = Sums()
        for m in members:
            if m.sums is not None:
                total.add(m.sums)
        blocks.append(BlockChange(name, len(members), sum(1 for m in members if m.status != IDENTICAL),
                                  total.relative_l2, total.max_abs))
    return sorted(blocks, key=lambda b: (-_rank(b.relative_l2), -b.moved, b.block))


def _rank(value: float | None) -> float:
    return math.inf if value is None else value


def weights_diff(old: Checkpoint, new: Checkpoint) -> WeightsDiff:
    """Compare two GGUF files: metadata always, tensors when both have the same architecture.
    Both headers are read and checked before any tensor data is mapped."""
    info_a, info_b = gguf.read_header(old.path), gguf.read_header(new.path)
    summarised = {}

    def same_bytes(key: str) -> bool:
        if key not in summarised:
            summarised[key] = gguf.value_bytes(info_a, key) == gguf.value_bytes(info_b, key)
        return summarised[key]

    metadata = metadata_changes(info_a.metadata, info_b.metadata, same_bytes)
    result = WeightsDiff(Side(old, info_a), Side(new, info_b), metadata, [], [], True)
    if info_a.architecture != info_b.architecture:
        result.tensors_compared = False
        result.reason = (f"different architectures ({info_a.architecture or 'none'} and "
                         f"{info_b.architecture or 'none'}): their tensors do not correspond, "
                         "so only the metadata is compared")
        return result
    by_name_b = {t.name: t for t in info_b.tensors}
    names_a = {t.name for t in info_a.tensors}
    changes = []
    with gguf.TensorData(info_a) as data_a, gguf.TensorData(info_b) as data_b:
        pairs = [(ta, by_name_b.get(ta.name)) for ta in info_a.tensors]
        # the next pair is read from disk by the kernel while this one is compared
        for ta, tb in pairs[:1]:
            data_a.prefetch(ta)
            if tb is not None:
                data_b.prefetch(tb)
        for index, (ta, tb) in enumerate(pairs):
            for na, nb in pairs[index + 1:index + 2]:
                data_a.prefetch(na)
                if nb is not None:
                    data_b.prefetch(nb)
            if tb is None:
                changes.append(TensorChange(ta.name, REMOVED, ta.type_name, None, _shape(ta)))
            else:
                changes.append(_compare(data_a, ta, data_b, tb))
    changes += [TensorChange(t.name, ADDED, None, t.type_name, None, _shape(t))
                for t in info_b.tensors if t.name not in names_a]
    order = {MOVED: 0, RETYPED: 0, BYTES: 1, RESHAPED: 2, ADDED: 3, REMOVED: 3, IDENTICAL: 4}
    result.tensors = sorted(changes, key=lambda t: (order[t.status], -_rank(t.relative_l2) if t.status in (
        MOVED, RETYPED) else 0, t.name))
    result.blocks = _blocks(changes)
    return result


def diff(a: str, b: str, model: str | None = None, start: Path | None = None) -> WeightsDiff:
    """``git model weights-diff A B``: each of A and B a GGUF path or a revision (see
    :func:`checkpoints.locate`)."""
    from gitmodel import checkpoints

    return weights_diff(checkpoints.locate(a, model, start), checkpoints.locate(b, model, start))


@dataclass
class ModelWeights:
    """One model's checkpoints at two revisions, compared (``diff --weights``): the diff, or why none."""

    model: str
    diff: WeightsDiff | None = None
    note: str = ""                 # e.g. "the same checkpoint (md5 …) at both revisions"

    def to_dict(self, top: int | None = 10) -> dict:
        return {"model": self.model, "note": self.note or None,
                "diff": self.diff.to_dict(top) if self.diff is not None else None}


def between(root: Path, model: str, old, new) -> ModelWeights:
    """``model``'s checkpoints at two resolved revisions, compared; the same md5 on both sides is said
    without reading a byte, and a side that tracks no checkpoint is said too."""
    from gitmodel import checkpoints, dvcyaml, store
    from gitmodel.errors import ModelNotFound

    rel = dvcyaml.model_path(model)
    md5s = store.tracked_md5s(root, [old.commit, new.commit], [rel])
    a, b = md5s[old.commit][rel], md5s[new.commit][rel]
    missing = [rev.label for rev, md5 in ((old, a), (new, b)) if md5 is None]
    if missing:
        return ModelWeights(model, note=f"no tracked checkpoint at {' and '.join(missing)}")
    if a == b:
        return ModelWeights(model, note=f"the same checkpoint at both revisions (md5 {a})")
    try:
        sides = [checkpoints.at(root, rev, model) for rev in (old, new)]
    except ModelNotFound as e:
        return ModelWeights(model, note=e.message)
    return ModelWeights(model, weights_diff(*sides))
