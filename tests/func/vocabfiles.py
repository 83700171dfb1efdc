"""Small vocabulary-only GGUF files, one per llama.cpp tokenizer family.

The fuzz tests mutate files laid out as llama.cpp's converter writes them
(the same keys, types and order as the ``ggml-vocab-*.gguf`` files of the
llama.cpp sources), built here rather than shipped: a few hundred tokens each
instead of a megabyte, and no third-party data in the repository. The demo
checkpoints stand for SentencePiece (``llama``); these add byte-level BPE
(``gpt2``), WordPiece (``bert``), Unigram (``t5``) and RWKV.
"""
from __future__ import annotations

from pathlib import Path

from gitmodel.demo.ggufwriter import BOOL, FLOAT32, INT32, STRING, UINT32, GGUFWriter

NORMAL, UNKNOWN, CONTROL, BYTE = 1, 2, 3, 6
WORDS = ("hello", "world", "the", "a", "model", "is", "good", "bad", "not", "very", "cafe")


def _gpt2_bytes() -> list[str]:
    """GPT-2's byte-to-unicode table (printable bytes as themselves, the rest shifted past 255)."""
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(0xA1, 0xAD)) + list(range(0xAE, 0x100))
    table, shift = {}, 0
    for byte in range(256):
        if byte in printable:
            table[byte] = chr(byte)
        else:
            table[byte] = chr(256 + shift)
            shift += 1
    return [table[b] for b in range(256)]


def _vocab_header(writer: GGUFWriter, arch: str, model: str) -> None:
    writer.add("general.architecture", STRING, arch)
    writer.add("general.name", STRING, f"vocab-{model}")
    writer.add(f"{arch}.context_length", UINT32, 512)
    writer.add(f"{arch}.block_count", UINT32, 1)
    writer.add("tokenizer.ggml.model", STRING, model)


def write_bpe(path: Path) -> Path:
    """Byte-level BPE as GPT-2 has it: the 256 byte symbols, merges, <|endoftext|>."""
    symbols = _gpt2_bytes()
    space = symbols[ord(" ")]
    tokens = list(symbols)
    merges = []
    for word in WORDS:
        piece = space + word
        for end in range(2, len(piece) + 1):
            left, right = piece[:end - 1], piece[end - 1]
            if piece[:end] not in tokens:
                tokens.append(piece[:end])
                merges.append(f"{left} {right}")
    tokens.append("<|endoftext|>")
    eot = len(tokens) - 1
    writer = GGUFWriter()
    _vocab_header(writer, "gpt2", "gpt2")
    writer.add("tokenizer.ggml.pre", STRING, "gpt-2")
    writer.add_array("tokenizer.ggml.tokens", STRING, tokens)
    writer.add_array("tokenizer.ggml.token_type", INT32, [NORMAL] * eot + [CONTROL])
    writer.add_array("tokenizer.ggml.merges", STRING, merges)
    writer.add("tokenizer.ggml.bos_token_id", UINT32, eot)
    writer.add("tokenizer.ggml.eos_token_id", UINT32, eot)
    writer.add("tokenizer.ggml.unknown_token_id", UINT32, eot)
    writer.write(path)
    return path


def write_wpm(path: Path) -> Path:
    """BERT's WordPiece: [PAD], unused slots, [UNK]=100, [CLS]=101, [SEP]=102, [MASK]=103."""
    tokens = ["[PAD]"] + [f"[unused{i}]" for i in range(99)] + ["[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    types = [CONTROL] * len(tokens)
    for char in "abcdefghijklmnopqrstuvwxyz0123456789.,!?'":
        tokens += [char, "##" + char]
        types += [NORMAL, NORMAL]
    for word in WORDS:
        if word not in tokens:
            tokens.append(word)
            types.append(NORMAL)
    writer = GGUFWriter()
    _vocab_header(writer, "bert", "bert")
    writer.add("tokenizer.ggml.pre", STRING, "default")
    writer.add_array("tokenizer.ggml.tokens", STRING, tokens)
    writer.add_array("tokenizer.ggml.token_type", INT32, types)
    writer.add("tokenizer.ggml.unknown_token_id", UINT32, 100)
    writer.add("tokenizer.ggml.seperator_token_id", UINT32, 102)
    writer.add("tokenizer.ggml.padding_token_id", UINT32, 0)
    writer.add("tokenizer.ggml.cls_token_id", UINT32, 101)
    writer.add("tokenizer.ggml.mask_token_id", UINT32, 103)
    writer.add("tokenizer.ggml.bos_token_id", UINT32, 101)
    writer.write(path)
    return path


def write_ugm(path: Path) -> Path:
    """T5's Unigram: <pad>, </s>, <unk>, then scored ▁-pieces."""
    tokens = ["<pad>", "</s>", "<unk>"]
    scores = [0.0, 0.0, 0.0]
    types = [CONTROL, CONTROL, UNKNOWN]
    pieces = {("\u2581" + w)[:n] for w in WORDS for n in range(1, len(w) + 2)}
    pieces = sorted(pieces | set("abcdefghijklmnopqrstuvwxyz"))
    for piece in pieces:
        tokens.append(piece)
        scores.append(-float(20 - len(piece)))
        types.append(NORMAL)
    writer = GGUFWriter()
    _vocab_header(writer, "t5", "t5")
    writer.add_array("tokenizer.ggml.tokens", STRING, tokens)
    writer.add_array("tokenizer.ggml.scores", FLOAT32, scores)
    writer.add_array("tokenizer.ggml.token_type", INT32, types)
    writer.add("tokenizer.ggml.add_bos_token", BOOL, False)
    writer.add("tokenizer.ggml.add_eos_token", BOOL, True)
    writer.add("tokenizer.ggml.eos_token_id", UINT32, 1)
    writer.add("tokenizer.ggml.unknown_token_id", UINT32, 2)
    writer.add("tokenizer.ggml.padding_token_id", UINT32, 0)
    writer.write(path)
    return path


def write_rwkv(path: Path) -> Path:
    """RWKV's world tokenizer: every byte escaped as a token, then words."""
    tokens = []
    for byte in range(256):
        char = chr(byte)
        if char == "\\":
            tokens.append("\\\\")
        elif char == "\n":
            tokens.append("\\n")
        elif char == "\t":
            tokens.append("\\t")
        elif char == "\r":
            tokens.append("\\r")
        elif 0x20 <= byte < 0x7F:
            tokens.append(char)
        else:
            tokens.append(f"\\x{byte:02x}")
    tokens += [" " + w for w in WORDS] + list(WORDS)
    tokens = list(dict.fromkeys(tokens))
    writer = GGUFWriter()
    _vocab_header(writer, "rwkv6", "rwkv")
    writer.add_array("tokenizer.ggml.tokens", STRING, tokens)
    writer.add_array("tokenizer.ggml.token_type", INT32, [NORMAL] * len(tokens))
    writer.write(path)
    return path


BUILDERS = {"bpe": write_bpe, "wpm": write_wpm, "ugm": write_ugm, "rwkv": write_rwkv}


def build_all(folder: Path) -> dict[str, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    return {name: build(folder / f"vocab-{name}.gguf") for name, build in BUILDERS.items()}
