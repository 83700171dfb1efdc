"""weights-diff on real GGUF files: the demo checkpoints, a copy requantised by llama.cpp, and copies
whose metadata (chat template, architecture) was edited; and `diff --weights` between two releases."""
from __future__ import annotations

import ctypes
import json
import shutil

import pytest

from gitmodel import gguf, weightsdiff
from gitmodel.checkpoints import Checkpoint
from gitmodel.errors import InvalidGGUF
from tests.func.stagekit import gm

TEMPLATE_A = "{% for m in messages %}<|{{ m.role }}|>\n{{ m.content }}\n{% endfor %}<|assistant|>\n"
TEMPLATE_B = "{% for m in messages %}<|{{ m.role }}|>\n{{ m.content | trim }}\n{% endfor %}<|assistant|>\n"


def compare(a, b) -> weightsdiff.WeightsDiff:
    return weightsdiff.weights_diff(Checkpoint(str(a), a), Checkpoint(str(b), b))


def edited_checkpoint(monkeypatch, path, version="v2", extra=None, architecture=None):
    """A demo checkpoint written with extra string keys, or another architecture name."""
    from gitmodel.demo import model
    from gitmodel.demo.ggufwriter import STRING, GGUFWriter

    add, write = GGUFWriter.add, GGUFWriter.write

    def patched_add(self, key, vtype, value):
        if key == "general.architecture" and architecture:
            value = architecture
        add(self, key, vtype, value)

    def patched_write(self, target):
        for key, value in (extra or {}).items():
            add(self, key, STRING, value)
        write(self, target)

    with monkeypatch.context() as m:
        m.setattr(GGUFWriter, "add", patched_add)
        m.setattr(GGUFWriter, "write", patched_write)
        model.write_checkpoint(version, path)
    return path


def test_v2_to_v3_moves_the_output_tensor_alone(demo_dir):
    d = compare(demo_dir / "sentiment-v2.gguf", demo_dir / "sentiment-v3.gguf")
    moved = [t for t in d.tensors if t.status != weightsdiff.IDENTICAL]
    assert [t.name for t in moved] == ["output.weight"]
    out = moved[0]
    assert out.status == weightsdiff.MOVED and out.old_type == out.new_type == "F32"
    # the bias of v3 is one weight of 1.3 on the `positive` row: the largest difference is exactly it
    assert out.max_abs_diff == pytest.approx(1.3, abs=1e-6)
    assert 0 < out.relative_l2 < 0.1 and 0.99 < out.cosine < 1
    assert d.count(weightsdiff.IDENTICAL) == len(d.tensors) - 1
    assert d.tensor_data_identical is False
    assert d.blocks[0].block == "output" and d.blocks[0].moved == 1
    assert all(b.moved == 0 for b in d.blocks[1:])
    assert [m.key for m in d.metadata] == ["general.name"]
    assert not d.chat_template and not d.tokenizer


def test_a_file_against_itself_is_byte_identical(demo_dir):
    d = compare(demo_dir / "sentiment-v1.gguf", demo_dir / "sentiment-v1.gguf")
    assert d.tensor_data_identical is True and d.metadata == []
    assert all(t.relative_l2 == 0.0 and t.cosine == 1.0 for t in d.tensors)


def test_a_requantised_copy_reports_every_type_change(demo_dir, tmp_path):
    import llama_cpp

    source, target = demo_dir / "sentiment-v2.gguf", tmp_path / "q8.gguf"
    p = llama_cpp.llama_model_quantize_default_params()
    p.ftype = llama_cpp.LLAMA_FTYPE_MOSTLY_Q8_0
    assert llama_cpp.llama_model_quantize(str(source).encode(), str(target).encode(), ctypes.byref(p)) == 0
    d = compare(source, target)
    before = {t.name: t for t in gguf.read_header(source).tensors}
    after = {t.name: t for t in gguf.read_header(target).tensors}
    retyped = {t.name for t in d.tensors if t.status == weightsdiff.RETYPED}
    assert retyped == {n for n in before if before[n].type_name != after[n].type_name}
    assert retyped and all(after[n].type_name == "Q8_0" for n in retyped)
    for t in d.tensors:
        if t.name in retyped:
            assert (t.old_type, t.new_type) == ("F32", "Q8_0")
            assert t.relative_l2 is not None and t.relative_l2 < 0.02, t
            assert t.cosine > 0.999
    assert {m.key for m in d.metadata} >= {"general.file_type"}


def test_an_edited_chat_template_is_a_unified_diff(demo_dir, tmp_path, monkeypatch):
    a = edited_checkpoint(monkeypatch, tmp_path / "a.gguf", extra={"tokenizer.chat_template": TEMPLATE_A})
    b = edited_checkpoint(monkeypatch, tmp_path / "b.gguf", extra={"tokenizer.chat_template": TEMPLATE_B})
    d = compare(a, b)
    [change] = d.chat_template
    assert change.key == "tokenizer.chat_template" and change.change == "changed"
    assert change.unified_diff[:2] == ["--- a/tokenizer.chat_template", "+++ b/tokenizer.chat_template"]
    assert "-{{ m.content }}" in change.unified_diff and "+{{ m.content | trim }}" in change.unified_diff
    assert d.tensor_data_identical is True
    result = gm("weights-diff", str(a), str(b))
    assert result.exit_code == 0, result.stderr
    assert "Chat template: CHANGED (tokenizer.chat_template)" in result.stdout
    assert "+{{ m.content | trim }}" in result.stdout


def test_a_template_added_is_a_diff_from_nothing(demo_dir, tmp_path, monkeypatch):
    b = edited_checkpoint(monkeypatch, tmp_path / "b.gguf", extra={"tokenizer.chat_template": TEMPLATE_A})
    d = compare(demo_dir / "sentiment-v2.gguf", b)
    [change] = d.chat_template
    assert change.change == "added" and "+{% endfor %}<|assistant|>" in change.unified_diff


def test_different_architectures_get_the_metadata_diff_only(demo_dir, tmp_path, monkeypatch):
    b = edited_checkpoint(monkeypatch, tmp_path / "b.gguf", architecture="qwen2")
    d = compare(demo_dir / "sentiment-v2.gguf", b)
    assert d.tensors_compared is False and d.tensors == [] and d.tensor_data_identical is None
    assert "different architectures (llama and qwen2)" in d.reason
    assert "general.architecture" in [m.key for m in d.metadata]
    result = gm("weights-diff", str(demo_dir / "sentiment-v2.gguf"), str(b))
    assert result.exit_code == 0
    assert "Tensors not compared: different architectures (llama and qwen2): their tensors do not correspond, " \
           "so only the metadata is compared." in result.stdout


def test_a_truncated_file_is_refused_before_anything_is_mapped(demo_dir, tmp_path, monkeypatch):
    broken = tmp_path / "broken.gguf"
    data = (demo_dir / "sentiment-v3.gguf").read_bytes()
    broken.write_bytes(data[: len(data) - 1000])
    mapped = []
    real = gguf.TensorData.__init__

    def spy(self, info):
        mapped.append(info.path)
        real(self, info)

    monkeypatch.setattr(gguf.TensorData, "__init__", spy)
    with pytest.raises(InvalidGGUF, match="lies outside the file"):
        compare(demo_dir / "sentiment-v2.gguf", broken)
    assert mapped == []
    result = gm("weights-diff", str(demo_dir / "sentiment-v2.gguf"), str(broken))
    assert result.exit_code == 3
    assert result.stderr.startswith(f"Error: {broken}: not a valid GGUF file: tensor 'output.weight' data")


def test_a_malformed_header_is_refused(demo_dir, tmp_path):
    bad = tmp_path / "bad.gguf"
    bad.write_bytes(b"GGUF" + (3).to_bytes(4, "little") + (1 << 40).to_bytes(8, "little") + bytes(8))
    result = gm("weights-diff", str(bad), str(demo_dir / "sentiment-v2.gguf"))
    assert result.exit_code == 3
    assert "not a valid GGUF file: tensor count 2^40 cannot fit" in result.stderr


def test_a_file_changed_after_its_header_was_read_is_refused(demo_dir, tmp_path):
    path = tmp_path / "v2.gguf"
    shutil.copy(demo_dir / "sentiment-v2.gguf", path)
    info = gguf.read_header(path)
    with open(path, "ab") as f:
        f.write(b"\0" * 10)
    with pytest.raises(InvalidGGUF, match="changed since its header was read"):
        gguf.TensorData(info)


def test_revisions_are_read_from_the_dvc_cache(released):
    result = gm("weights-diff", "sentiment@v1.2.0", "sentiment@v1.10.0", "--json")
    assert result.exit_code == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["old"]["label"] == "sentiment@v1.2.0" and data["old"]["md5"]
    assert "/.dvc/cache/files/md5/" in data["old"]["path"]
    assert [t["name"] for t in data["tensors"]] == ["output.weight"]
    assert data["counts"]["changed"] == 1


def test_diff_weights_adds_the_summary_and_a_collapsible_block(released):
    text = gm("diff", "sentiment@v1.2.0", "sentiment@v1.10.0", "--weights")
    assert text.exit_code == 0, text.stderr
    assert "Weights of sentiment (sentiment@v1.2.0 -> sentiment@v1.10.0):" in text.stdout
    assert "moved most: output.weight" in text.stdout
    md = gm("diff", "sentiment@v1.2.0", "sentiment@v1.10.0", "--weights", "--md")
    assert md.exit_code == 0, md.stderr
    assert "<details><summary>Weights of sentiment: 1 changed, 11 identical</summary>" in md.stdout
    assert "| `output.weight` | changed |" in md.stdout
    js = json.loads(gm("diff", "sentiment@v1.2.0", "sentiment@v1.10.0", "--weights", "--json").stdout)
    [w] = js["weights"]
    assert w["model"] == "sentiment" and w["diff"]["counts"]["changed"] == 1
    assert "metrics" in js
    same = json.loads(gm("diff", "sentiment@v1.2.0", "sentiment@v1.2.0", "--weights", "--json").stdout)
    assert same["weights"][0]["diff"] is None and "same checkpoint" in same["weights"][0]["note"]
    # without --weights, --json stays exactly dvc's shape
    plain = json.loads(gm("diff", "sentiment@v1.2.0", "sentiment@v1.10.0", "--json").stdout)
    assert "weights" not in plain and "metrics" not in plain


def tiny_gguf(path, tensors, metadata=(("general.architecture", "llama"),)):
    """A GGUF file written byte by byte: ``tensors`` is [(name, ggml type id, dims, data bytes)]."""
    import struct

    def string(text):
        raw = text.encode()
        return struct.pack("<Q", len(raw)) + raw

    head = b"GGUF" + struct.pack("<IQQ", 3, len(tensors), len(metadata))
    for key, value in metadata:
        head += string(key) + struct.pack("<I", 8) + string(value)
    offset, blobs = 0, []
    for name, type_id, dims, data in tensors:
        head += string(name) + struct.pack("<I", len(dims)) + b"".join(struct.pack("<Q", d) for d in dims)
        head += struct.pack("<IQ", type_id, offset)
        blobs.append(data + b"\0" * (-len(data) % 32))
        offset += len(blobs[-1])
    path.write_bytes(head + b"\0" * (-len(head) % 32) + b"".join(blobs))
    return path


def test_a_type_that_cannot_be_dequantised_is_compared_by_bytes(tmp_path):
    from gitmodel import tensordiff

    q8_1 = 9
    assert not tensordiff.can_dequantise(q8_1)
    block = bytes(range(36))
    a = tiny_gguf(tmp_path / "a.gguf", [("blk.0.ffn_up.weight", q8_1, (32, 2), block * 2)])
    b = tiny_gguf(tmp_path / "b.gguf", [("blk.0.ffn_up.weight", q8_1, (32, 2), block + bytes(36))])
    [t] = compare(a, b).tensors
    assert t.status == weightsdiff.BYTES and t.note == "type Q8_1: compared by bytes"
    assert t.relative_l2 is None
    [same] = compare(a, a).tensors
    assert same.status == weightsdiff.IDENTICAL


def test_quantised_values_are_gguf_pys(tmp_path):
    import numpy as np
    from gguf import GGMLQuantizationType
    from gguf.quants import dequantize, quantize

    values = np.linspace(-1, 1, 64, dtype=np.float32).reshape(2, 32)
    q = quantize(values, GGMLQuantizationType.Q4_0)
    a = tiny_gguf(tmp_path / "a.gguf", [("w", 0, (32, 2), values.tobytes())])
    b = tiny_gguf(tmp_path / "b.gguf", [("w", 2, (32, 2), q.tobytes())])
    [t] = compare(a, b).tensors
    back = dequantize(q, GGMLQuantizationType.Q4_0).reshape(-1)
    diff = back - values.reshape(-1)
    assert t.status == weightsdiff.RETYPED and (t.old_type, t.new_type) == ("F32", "Q4_0")
    assert t.max_abs_diff == pytest.approx(float(np.abs(diff).max()), rel=1e-6)
    assert t.relative_l2 == pytest.approx(float(np.linalg.norm(diff) / np.linalg.norm(values)), rel=1e-5)


def test_f16_and_bf16_values_match_numpy(tmp_path):
    import numpy as np

    from gitmodel import tensordiff

    values = np.array([0.0, -0.0, 1.5, -2.25, 65504.0, 6e-8, np.inf, 3.14159], dtype=np.float32)
    half = values.astype(np.float16)
    assert np.array_equal(tensordiff.floats(1, half.tobytes()), half.astype(np.float32))
    bf16 = (values.view(np.uint32) >> 16).astype(np.uint16)
    assert np.array_equal(tensordiff.floats(30, bf16.tobytes()), (bf16.astype(np.uint32) << 16).view(np.float32))


def test_a_changed_vocabulary_names_the_tokenizer(demo_dir, tmp_path, monkeypatch):
    from gitmodel.demo.ggufwriter import GGUFWriter

    add_array = GGUFWriter.add_array

    def renamed_last_token(self, key, item_type, values):
        if key == "tokenizer.ggml.tokens":
            values = [*values[:-1], values[-1] + "x"]
        add_array(self, key, item_type, values)

    monkeypatch.setattr(GGUFWriter, "add_array", renamed_last_token)
    b = edited_checkpoint(monkeypatch, tmp_path / "b.gguf")
    d = compare(demo_dir / "sentiment-v2.gguf", b)
    assert [m.key for m in d.tokenizer] == ["tokenizer.ggml.tokens"]
    assert d.tokenizer[0].old == d.tokenizer[0].new == "[713 × string]"
    assert d.tensor_data_identical is True


def test_infinite_values_give_json_that_parses(tmp_path):
    import numpy as np

    a = tiny_gguf(tmp_path / "a.gguf", [("w", 0, (4,), np.array([1, 2, np.inf, 4], dtype="<f4").tobytes())])
    b = tiny_gguf(tmp_path / "b.gguf", [("w", 0, (4,), np.array([1, 2, np.inf, 5], dtype="<f4").tobytes())])
    result = gm("weights-diff", str(a), str(b), "--json")
    assert result.exit_code == 0, result.stderr
    [t] = json.loads(result.stdout, parse_constant=lambda c: pytest.fail(f"{c} in JSON"))["tensors"]
    assert t["status"] == "changed" and t["relative_l2"] is None
