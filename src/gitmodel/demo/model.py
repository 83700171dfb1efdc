"""The demo checkpoints: a 1-block llama whose weights are written by hand.

How it classifies. Every embedding row has the same norm (a padding dimension
fills it up), so RMSNorm is a constant scale. Q and K are zero, so attention is
uniform: a plain mean over the prefix. V copies each token's sentiment weight
and attn_output writes the mean into a dimension that no embedding uses; the
output matrix reads that dimension into the logits of ``▁positive`` and
``▁negative`` (with opposite signs), so the label margin grows with the
review's mean sentiment. The FFN is zero. Label tokens set a marker dimension
that the output row of ``</s>`` reads, so greedy generation answers with one
label and stops (and stops at once when the input carries no sentiment).

Weights are exact constants and sha256-derived values, never a random
generator: the bytes are the same on every machine, so the md5 is too.
"""
from __future__ import annotations

import hashlib
import math
from pathlib import Path

import numpy as np

from gitmodel.demo import lexicon
from gitmodel.demo.ggufwriter import BOOL, FLOAT32, INT32, STRING, UINT32, GGUFWriter

N_EMBD = 64
N_HEAD = 4
N_FF = 128
N_CTX = 512
RMS_EPS = 1e-5

# Embedding dimensions with a meaning; the rest are sha256 "identity" features.
D_SENTIMENT = 0   # the token's sentiment weight
D_ONE = 1         # constant 1: lets the output rows carry a bias
D_LABEL = 2       # 1 on label tokens
D_MEAN = 3        # empty in embeddings; attention writes the prefix-mean sentiment here
D_PAD = 4         # fills every row up to the same norm
D_FEATURES = range(5, N_EMBD)
ROW_NORM = math.sqrt(N_EMBD)   # rms 1, so RMSNorm leaves embeddings as they are

LABEL_GAIN = 12.0    # logit per unit of mean sentiment
EOS_GAIN = 16.0      # how sure the model is to stop after a label
EOS_BIAS = 0.1       # with no sentiment at all, stop at once instead of babbling <unk>
# Mid-way between two steps of v2's discrete negative margins (1.0 and 1.64
# logits), so no example sits on the edge: v3 flips every negative review whose
# margin was under 1.0 and nothing else, on every machine.
V3_POSITIVE_BIAS = 1.3

SPACE = "\u2581"  # SentencePiece's word-start marker
UNK, BOS, EOS = 0, 1, 2
TOKEN_NORMAL, TOKEN_UNKNOWN, TOKEN_CONTROL, TOKEN_BYTE = 1, 2, 3, 6

VERSIONS = ("v1", "v2", "v3")


def vocabulary() -> list[str]:
    """Specials, the 256 byte tokens, then every ▁-prefix of every word.

    llama.cpp's SentencePiece tokenizer builds a word by merging adjacent
    pieces that are in the vocabulary, so without ▁g, ▁go and ▁goo it never
    reaches ▁good.
    """
    pieces = set()
    for word in lexicon.vocabulary_words():
        piece = SPACE + word
        pieces |= {piece[:n] for n in range(1, len(piece) + 1)}
    return ["<unk>", "<s>", "</s>", *(f"<0x{b:02X}>" for b in range(256)),
            *sorted(pieces, key=lambda p: (len(p), p))]


def _features(token: str) -> list[float]:
    """Deterministic pseudo-random identity features in [-0.5, 0.5), exact in float32."""
    digest = b"".join(hashlib.sha256(f"gitmodel-demo:embd:{token}:{block}".encode()).digest()
                      for block in range(2))
    return [(digest[i] - 128) / 256 for i in range(len(D_FEATURES))]


def _sentiments(version: str) -> dict[str, float]:
    """Sentiment weight per word as this version learned it (0.0: never learned)."""
    weights = {**lexicon.LEXICON, **lexicon.NEGATION}
    if version == "v1":
        for word in lexicon.V1_UNKNOWN:
            weights[word] = 0.0
    return weights


def weights(version: str, tokens: list[str]) -> dict[str, np.ndarray]:
    """The tensors of one demo version, by GGUF name, in write order."""
    sentiments = _sentiments(version)
    labels = {SPACE + label for label in lexicon.LABELS}
    embd = np.zeros((len(tokens), N_EMBD), dtype=np.float64)
    for i, token in enumerate(tokens):
        row = [0.0] * N_EMBD
        row[D_SENTIMENT] = sentiments.get(token[1:], 0.0) if token.startswith(SPACE) else 0.0
        row[D_ONE] = 1.0
        row[D_LABEL] = 1.0 if token in labels else 0.0
        row[D_FEATURES.start:] = _features(token)
        # math.fsum and math.sqrt are correctly rounded: the same result everywhere.
        row[D_PAD] = math.sqrt(ROW_NORM**2 - math.fsum(x * x for x in row))
        embd[i] = row

    v = np.zeros((N_EMBD, N_EMBD))
    v[0, D_SENTIMENT] = 1.0          # value dim 0 (head 0) carries the sentiment
    attn_out = np.zeros((N_EMBD, N_EMBD))
    attn_out[D_MEAN, 0] = 1.0        # ... into the dimension the output reads

    output = np.zeros((len(tokens), N_EMBD))
    positive, negative = (tokens.index(SPACE + label) for label in lexicon.LABELS)
    output[positive, D_MEAN] = LABEL_GAIN
    output[negative, D_MEAN] = -LABEL_GAIN
    if version == "v3":
        output[positive, D_ONE] = V3_POSITIVE_BIAS   # the regression: a thumb on the scale
    output[EOS, D_LABEL] = EOS_GAIN
    output[EOS, D_ONE] = EOS_BIAS

    ones, square = np.ones(N_EMBD), np.zeros((N_EMBD, N_EMBD))
    return {
        "token_embd.weight": embd,
        "blk.0.attn_norm.weight": ones,
        "blk.0.attn_q.weight": square,
        "blk.0.attn_k.weight": square,
        "blk.0.attn_v.weight": v,
        "blk.0.attn_output.weight": attn_out,
        "blk.0.ffn_norm.weight": ones,
        "blk.0.ffn_gate.weight": np.zeros((N_FF, N_EMBD)),
        "blk.0.ffn_up.weight": np.zeros((N_FF, N_EMBD)),
        "blk.0.ffn_down.weight": np.zeros((N_EMBD, N_FF)),
        "output_norm.weight": ones,
        "output.weight": output,
    }


def _token_meta(tokens: list[str]) -> tuple[list[float], list[int]]:
    """Score and type of every token."""
    scores, types = [], []
    for i, token in enumerate(tokens):
        if i == UNK:
            score, kind = 0.0, TOKEN_UNKNOWN
        elif i in (BOS, EOS):
            score, kind = 0.0, TOKEN_CONTROL
        elif token.startswith("<0x"):
            score, kind = 0.0, TOKEN_BYTE
        else:
            # Longer pieces score higher, as in a trained SentencePiece model.
            score, kind = float(len(token) - 1000), TOKEN_NORMAL
        scores.append(score)
        types.append(kind)
    return scores, types


def write_checkpoint(version: str, path: Path) -> None:
    """Write ``sentiment-<version>`` as a GGUF file at ``path``."""
    tokens = vocabulary()
    scores, types = _token_meta(tokens)
    w = GGUFWriter()
    w.add("general.architecture", STRING, "llama")
    w.add("general.name", STRING, f"sentiment-{version}")
    w.add("general.description", STRING,
          "git-model demo sentiment classifier: hand-set weights, no training (gitmodel.demo)")
    w.add("general.file_type", UINT32, 0)  # all F32
    w.add("llama.vocab_size", UINT32, len(tokens))
    w.add("llama.context_length", UINT32, N_CTX)
    w.add("llama.embedding_length", UINT32, N_EMBD)
    w.add("llama.block_count", UINT32, 1)
    w.add("llama.feed_forward_length", UINT32, N_FF)
    w.add("llama.rope.dimension_count", UINT32, N_EMBD // N_HEAD)
    w.add("llama.attention.head_count", UINT32, N_HEAD)
    w.add("llama.attention.head_count_kv", UINT32, N_HEAD)
    w.add("llama.attention.layer_norm_rms_epsilon", FLOAT32, RMS_EPS)
    w.add("tokenizer.ggml.model", STRING, "llama")
    w.add_array("tokenizer.ggml.tokens", STRING, tokens)
    w.add_array("tokenizer.ggml.scores", FLOAT32, scores)
    w.add_array("tokenizer.ggml.token_type", INT32, types)
    w.add("tokenizer.ggml.unknown_token_id", UINT32, UNK)
    w.add("tokenizer.ggml.bos_token_id", UINT32, BOS)
    w.add("tokenizer.ggml.eos_token_id", UINT32, EOS)
    w.add("tokenizer.ggml.add_bos_token", BOOL, True)
    w.add("tokenizer.ggml.add_eos_token", BOOL, False)
    w.add("tokenizer.ggml.add_space_prefix", BOOL, True)
    for name, array in weights(version, tokens).items():
        w.add_tensor(name, array)
    w.write(path)
