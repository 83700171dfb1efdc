"""What llama.cpp aborts on when it loads a GGUF file, checked before it sees one.

The header reader (:mod:`gitmodel.gguf`) proves the file is well-formed GGUF.
llama.cpp then trusts the *contents*: a ``GGML_ASSERT`` that fails kills the
whole process (SIGABRT), and a C++ exception thrown where the C API does not
catch it (tokenization) does the same. These checks refuse such files first,
naming the key, the index and the byte offset, in well under a second for a
150k-token vocabulary (the token strings are read once, in one read).

Covered, as read in llama.cpp's loader (``src/llama-vocab.cpp``,
``src/llama-model.cpp``, ``src/llama-model-loader.cpp``):

- ``general.architecture`` is one the installed llama.cpp knows (it would
  throw "unknown model architecture"; the list comes from the library itself).
- ``GGML_ASSERT(id_to_token.size() == token_to_id.size())``: every token string
  unique, with llama.cpp's renaming of an empty token ``i`` to ``[EMPTY_i]``.
- ``GGML_ASSERT(special_bos_id / special_eos_id / special_sep_id != NULL)`` in
  ``tokenize``: a vocabulary that adds BOS (SPM, WPM, UGM, BPE unless
  ``add_bos_token`` is false), EOS (``add_eos_token``, UGM by default) or SEP
  (WPM always) must have that token, from its key or llama.cpp's default id.
- ``GGML_ASSERT(tokenizer && "Tokenizer not initialized")``: a ``no_vocab``
  (or ``none``) tokenizer model, which every eval would tokenize with.
- ``GGML_ABORT`` in ``token_to_byte`` for a WPM (BERT) vocabulary: reached
  while the piece cache is built, for any token typed BYTE.
- ``token_to_id.at()`` in SPM's byte fallback, an uncaught ``out_of_range``
  while tokenizing: every byte needs ``<0xXX>`` or a one-byte token.
- RWKV's newline assert cannot fire (its tokenizer emits UNK, id -1, for a
  byte it has no token for), but that id aborts the first detokenization,
  and the same tokenizer loops forever when such a byte begins a longer
  token: every byte must have its own token.
- The loader's ``throw``s that are cheap to check, so the error is ours:
  tokens, scores and token types of the wrong type; scores or token types
  shorter than the tokens; special token ids beyond the vocabulary (llama.cpp
  only warns and falls back to a default id, which silently changes the
  model); missing PLaMo-2 byte tokens.
- ``load_hparams``: ``0 < block_count <= LLAMA_MAX_LAYERS``,
  ``nextn_predict_layers <= block_count``, the expert counts (count, used,
  groups) and a known ``rope.scaling.type``.
- Tensors: ``GGML_ASSERT(ne >= 1)`` and ``nb >= 1``, and ``ggml_nbytes`` of a
  reshaped tensor, hold because the header reader refuses zero dimensions,
  unknown types and rows that are not whole blocks.

Not covered, and why: the per-architecture graph builders assert on
hyper-parameter combinations (``n_embd_head == n_embd_head_k`` and hundreds
like it, one set per architecture, fired when a context is created); the UGM
charsmap and XCDA bounds checks thrown while tokenizing; anything that
depends on the input text. Mirroring those would mean re-implementing each
architecture; instead the first load of every checkpoint runs in a child
process (:mod:`gitmodel.loadcheck`), so a crash there is reported as the
file's fault and remembered.
"""
from __future__ import annotations

import ctypes
import functools
import importlib.util
import struct
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

from gitmodel.errors import InvalidGGUF

if TYPE_CHECKING:
    from gitmodel.gguf import GGUFInfo

_ARRAY, _STRING = 9, 8
_INT32, _FLOAT32 = 5, 6
_INTEGER_TYPES = {0, 1, 2, 3, 4, 5, 10, 11}
_TYPE_NAMES = {0: "uint8", 1: "int8", 2: "uint16", 3: "int16", 4: "uint32", 5: "int32", 6: "float32",
               7: "bool", 8: "string", 9: "array", 10: "uint64", 11: "int64", 12: "float64"}

TOKENS = "tokenizer.ggml.tokens"
SCORES = "tokenizer.ggml.scores"
TOKEN_TYPES = "tokenizer.ggml.token_type"
MODEL = "tokenizer.ggml.model"
# The special ids llama.cpp's load_vocab reads (llama-vocab.cpp, special_token_types).
SPECIAL_IDS = tuple(f"tokenizer.ggml.{name}_token_id" for name in (
    "bos", "eos", "eot", "eom", "unknown", "seperator", "padding", "mask",
    "fim_pre", "fim_suf", "fim_mid", "fim_pad", "fim_rep", "fim_sep", "prefix", "suffix", "middle"))
BOS, EOS, SEP = SPECIAL_IDS[0], SPECIAL_IDS[1], SPECIAL_IDS[5]
TOKEN_TYPE_BYTE = 6
# llama-hparams.h
LLAMA_MAX_LAYERS = 512
LLAMA_MAX_EXPERTS = 1024
# llama-model.cpp LLAMA_ROPE_SCALING_TYPES
ROPE_SCALING_TYPES = ("none", "linear", "yarn", "longrope")

# Per tokenizer model (llama-vocab.cpp load_vocab): llama.cpp's default BOS,
# EOS and SEP ids, and whether tokenizing with special tokens adds BOS / EOS /
# SEP unless the file's add_*_token keys say otherwise.
_SPM, _WPM, _BPE, _UGM = "spm", "wpm", "bpe", "ugm"
_VOCAB_TYPES = {"llama": _SPM, "bert": _WPM, "gpt2": _BPE, "hybriddna": _BPE, "whitespace": _BPE,
                "gemma4": _BPE, "t5": _UGM, "rwkv": "rwkv", "plamo2": "plamo2", "test": "test"}
_DEFAULT_IDS = {"llama": (1, 2, None), "bert": (101, None, 102), "gpt2": (11, 11, None),
                "hybriddna": (11, 11, None), "whitespace": (11, 11, None), "t5": (None, 1, None),
                "plamo2": (1, 2, None)}
_DEFAULT_ADDS = {_SPM: (True, False), _WPM: (True, False), _UGM: (False, True),
                 # BPE's default depends on the pre-tokenizer; assume it adds BOS.
                 _BPE: (True, False)}


def check_for_llama_cpp(info: GGUFInfo, file: BinaryIO) -> None:
    """Refuse what would make llama.cpp abort (or throw) while loading ``info``'s file."""
    check = _Checker(info, file)
    check.architecture()
    check.vocabulary()
    check.hyperparameters()


@functools.lru_cache(maxsize=1)
def supported_architectures() -> frozenset[str] | None:
    """The architecture names the installed llama.cpp knows, asked of the library.

    ``llm_arch_name`` is exported by libllama (a C++ symbol): walking the
    ``llm_arch`` enum until its last value, ``LLM_ARCH_UNKNOWN``, lists exactly
    what ``llm_arch_from_string`` accepts. None when llama-cpp-python is not
    installed or its library does not export the function: llama.cpp then
    still refuses an unknown architecture itself, with its own message.
    """
    library = _libllama_path()
    if library is None:
        return None
    try:
        lib = ctypes.CDLL(str(library))
        arch_name = lib["_Z13llm_arch_name8llm_arch"]
    except (OSError, AttributeError):
        return None
    arch_name.restype = ctypes.c_char_p
    arch_name.argtypes = [ctypes.c_int]
    names = set()
    for value in range(4096):
        name = arch_name(value)
        if name == b"(unknown)":
            return frozenset(names)
        if name and name != b"unknown":
            names.add(name.decode("utf-8", "replace"))
    return None     # no LLM_ARCH_UNKNOWN: not the function we think it is


def _libllama_path() -> Path | None:
    spec = importlib.util.find_spec("llama_cpp")
    if spec is None or not spec.submodule_search_locations:
        return None
    for folder in spec.submodule_search_locations:
        for name in ("libllama.so", "libllama.dylib", "llama.dll"):
            candidate = Path(folder) / "lib" / name
            if candidate.is_file():
                return candidate
    return None


class _Checker:
    def __init__(self, info: GGUFInfo, file: BinaryIO):
        self.info = info
        self.file = file
        self.meta = info.metadata
        self.spans = info.value_spans

    def fail(self, key: str, problem: str, offset: int) -> InvalidGGUF:
        return InvalidGGUF(self.info.path, f"key {key!r}: {problem}", offset)

    def value_offset(self, key: str) -> int:
        return self.spans[key][1]

    def value_type(self, key: str) -> int:
        return self.spans[key][0]

    def array_header(self, key: str) -> tuple[int, int]:
        """(element type, length) of the array at ``key``."""
        self.file.seek(self.value_offset(key))
        return struct.unpack("<IQ", self.file.read(12))

    def integer(self, key: str) -> int | None:
        """The value of an integer key; refused if it has another type."""
        if key not in self.spans:
            return None
        value_type = self.value_type(key)
        if value_type not in _INTEGER_TYPES:
            raise self.fail(key, f"must be an integer, not {_TYPE_NAMES.get(value_type, value_type)}",
                            self.value_offset(key))
        return self.meta[key]

    def typed_array(self, key: str, allowed: tuple[int, ...]) -> tuple[int, int] | None:
        if key not in self.spans:
            return None
        if self.value_type(key) != _ARRAY:
            raise self.fail(key, f"must be an array, not {_TYPE_NAMES.get(self.value_type(key))}",
                            self.value_offset(key))
        element_type, length = self.array_header(key)
        if element_type not in allowed:
            wanted = " or ".join(_TYPE_NAMES[t] for t in allowed)
            raise self.fail(key, f"must be an array of {wanted}, not of {_TYPE_NAMES.get(element_type)}",
                            self.value_offset(key))
        return element_type, length

    # -- architecture -----------------------------------------------------

    def architecture(self) -> None:
        key = "general.architecture"
        if key not in self.spans:
            return   # llama.cpp refuses a missing key itself ("key not found")
        if self.value_type(key) != _STRING:
            raise self.fail(key, "must be a string", self.value_offset(key))
        known = supported_architectures()
        arch = self.meta[key]
        if known is not None and arch not in known:
            raise self.fail(key, f"unknown model architecture {arch!r}: the installed llama.cpp supports "
                                 f"{len(known)} architectures ({', '.join(sorted(known)[:8])}, ...)",
                            self.value_offset(key))

    # -- vocabulary -------------------------------------------------------

    def vocabulary(self) -> None:
        model = self.meta.get(MODEL)
        if model is None:
            return   # llama.cpp throws "key not found"
        if self.value_type(MODEL) != _STRING:
            raise self.fail(MODEL, "must be a string", self.value_offset(MODEL))
        if model in ("no_vocab", "none"):
            # Every eval tokenizes, and llama.cpp asserts a tokenizer exists when it does.
            raise self.fail(MODEL, f"{model!r} means the checkpoint has no tokenizer: llama.cpp aborts on the "
                                   "first tokenization", self.value_offset(MODEL))
        if TOKENS not in self.spans:
            return   # llama.cpp throws "cannot find tokenizer vocab"
        _, n_tokens = self.typed_array(TOKENS, (_STRING,))
        tokens = self.read_tokens(n_tokens)
        self.unique(tokens)
        for key, allowed in ((SCORES, (_INT32, _FLOAT32)), (TOKEN_TYPES, (_INT32,))):
            shape = self.typed_array(key, allowed)
            if shape is not None and shape[1] < n_tokens:
                raise self.fail(key, f"{shape[1]} entries for {n_tokens} tokens: index {shape[1]} "
                                     f"(token {_show(tokens[shape[1]])}) has none", self.value_offset(key) + 4)
        ids = self.special_ids(n_tokens)
        kind = _VOCAB_TYPES.get(model)
        types = self.token_types(n_tokens)
        self.added_specials(model, kind, ids, n_tokens)
        if kind == _WPM and types is not None:
            for index, token_type in enumerate(types):
                if token_type == TOKEN_TYPE_BYTE:
                    raise self.fail(TOKEN_TYPES, f"token {index} ({_show(tokens[index])}) is typed BYTE, which "
                                                 "llama.cpp aborts on in a BERT (WPM) vocabulary",
                                    self.value_offset(TOKEN_TYPES) + 12 + 4 * index)
        if kind == _SPM:
            self.byte_fallback(tokens)
        elif kind == "rwkv":
            self.rwkv_bytes(tokens)
        elif kind == "plamo2":
            self.plamo2_bytes(tokens, types)

    def read_tokens(self, n_tokens: int) -> list[bytes]:
        """Every token string, in one read of the array (the reader bounded its length)."""
        _, start, end = self.spans[TOKENS]
        self.file.seek(start + 12)
        data = self.file.read(end - start - 12)
        unpack_length = struct.Struct("<Q").unpack_from
        tokens = []
        append = tokens.append
        pos = 0
        for _ in range(n_tokens):
            (length,) = unpack_length(data, pos)
            pos += 8
            append(data[pos:pos + length])
            pos += length
        return tokens

    def token_offset(self, index: int) -> int:
        _, start, end = self.spans[TOKENS]
        self.file.seek(start + 12)
        data = self.file.read(end - start - 12)
        pos = 0
        for _ in range(index):
            pos += 8 + struct.unpack_from("<Q", data, pos)[0]
        return start + 12 + pos

    def unique(self, tokens: list[bytes]) -> None:
        # llama.cpp renames an empty token i to "[EMPTY_i]" before indexing it.
        names = [token or b"[EMPTY_%d]" % index for index, token in enumerate(tokens)]
        if len(set(names)) == len(names):
            return
        first: dict[bytes, int] = {}
        for index, name in enumerate(names):
            earlier = first.setdefault(name, index)
            if earlier != index:
                raise self.fail(TOKENS, f"token {index} repeats token {earlier} ({_show(name)}): llama.cpp "
                                        "aborts on a vocabulary whose strings are not unique",
                                self.token_offset(index))

    def token_types(self, n_tokens: int) -> list[int] | None:
        if TOKEN_TYPES not in self.spans:
            return None
        self.file.seek(self.value_offset(TOKEN_TYPES) + 12)
        raw = self.file.read(4 * n_tokens)
        return list(struct.unpack(f"<{n_tokens}i", raw))

    def special_ids(self, n_tokens: int) -> dict[str, int]:
        ids = {}
        for key in SPECIAL_IDS:
            value = self.integer(key)
            if value is None:
                continue
            if not 0 <= value < n_tokens:
                raise self.fail(key, f"token id {value} is outside the vocabulary of {n_tokens} tokens "
                                     f"(ids 0 to {n_tokens - 1})", self.value_offset(key))
            ids[key] = value
        return ids

    def flag(self, key: str) -> bool | None:
        if key not in self.spans:
            return None
        if self.value_type(key) != 7:
            raise self.fail(key, f"must be a bool, not {_TYPE_NAMES.get(self.value_type(key))}",
                            self.value_offset(key))
        return self.meta[key]

    def added_specials(self, model: str, kind: str | None, ids: dict[str, int], n_tokens: int) -> None:
        """The BOS / EOS / SEP tokens llama.cpp asserts on when it adds them while tokenizing."""
        if kind not in _DEFAULT_ADDS:
            return
        default_bos, default_eos, default_sep = _DEFAULT_IDS.get(model, (None, None, None))
        add_bos, add_eos = _DEFAULT_ADDS[kind]
        bos_flag = self.flag("tokenizer.ggml.add_bos_token")
        eos_flag = self.flag("tokenizer.ggml.add_eos_token")
        add_bos = bos_flag if bos_flag is not None else add_bos
        add_eos = eos_flag if eos_flag is not None else add_eos
        if model == "gemma4":
            add_bos = True   # llama.cpp forces it for Gemma 4
        if kind == _WPM:
            add_bos = True   # WPM adds [CLS] and [SEP] whatever the flags say
        def why(flag_key: str, flag: bool | None) -> str:
            if flag is not None and kind != _WPM and model != "gemma4":
                return f"{flag_key} is true"
            return f"llama.cpp always does for a {model!r} vocabulary"

        needed = [(BOS, add_bos, default_bos, why("tokenizer.ggml.add_bos_token", bos_flag)),
                  (EOS, add_eos, default_eos, why("tokenizer.ggml.add_eos_token", eos_flag))]
        if kind == _WPM:
            needed.append((SEP, True, default_sep, why("", None)))
        for key, adds, default, reason in needed:
            if not adds or key in ids:
                continue
            if default is not None and default < n_tokens:
                continue
            raise InvalidGGUF(
                self.info.path,
                f"key {key!r} is missing and llama.cpp has no default for it in this "
                f"{n_tokens}-token vocabulary, but the tokenizer adds that token ({reason}): "
                "llama.cpp aborts on the first tokenization",
                self.value_offset(TOKENS),
            )

    def byte_fallback(self, tokens: list[bytes]) -> None:
        present = set(tokens)
        for byte in range(256):
            # The fallback's one-byte string is a C string: for byte 0 it is empty, never a token.
            if b"<0x%02X>" % byte not in present and (byte == 0 or bytes([byte]) not in present):
                raise self.fail(TOKENS, f"no token for byte 0x{byte:02X} (neither '<0x{byte:02X}>' nor the "
                                        "byte itself): llama.cpp's SentencePiece tokenizer aborts when it "
                                        "falls back to that byte", self.value_offset(TOKENS))

    def rwkv_bytes(self, tokens: list[bytes]) -> None:
        singles = {text for text in map(_rwkv_unescape, tokens) if len(text) == 1}
        for byte in range(256):
            if bytes([byte]) not in singles:
                raise self.fail(TOKENS, f"no token for byte 0x{byte:02X}: llama.cpp's RWKV tokenizer then "
                                        "emits token id -1, which aborts the first detokenization (or never "
                                        "returns, when the byte begins a longer token)",
                                self.value_offset(TOKENS))

    def plamo2_bytes(self, tokens: list[bytes], types: list[int] | None) -> None:
        byte_tokens = {token for index, token in enumerate(tokens)
                       if types is not None and types[index] == TOKEN_TYPE_BYTE}
        for byte in range(256):
            if b"<0x%02X>" % byte not in byte_tokens:
                raise self.fail(TOKENS, f"no BYTE-typed token '<0x{byte:02X}>', which the PLaMo-2 "
                                        "tokenizer requires", self.value_offset(TOKENS))

    # -- hyper-parameters -------------------------------------------------

    def hyperparameters(self) -> None:
        arch = self.meta.get("general.architecture")
        if not isinstance(arch, str):
            return
        block_key = f"{arch}.block_count"
        n_layer = self.integer(block_key)
        if n_layer is None:
            return   # llama.cpp throws "key not found"
        if not 0 < n_layer <= LLAMA_MAX_LAYERS:
            raise self.fail(block_key, f"{n_layer} layers; llama.cpp asserts 1 to {LLAMA_MAX_LAYERS}",
                            self.value_offset(block_key))
        nextn = self.integer(f"{arch}.nextn_predict_layers")
        if nextn is not None and not 0 <= nextn <= n_layer:
            raise self.fail(f"{arch}.nextn_predict_layers", f"{nextn} is not within 0 to block_count {n_layer}",
                            self.value_offset(f"{arch}.nextn_predict_layers"))
        self.experts(arch)
        scaling_key = f"{arch}.rope.scaling.type"
        scaling = self.meta.get(scaling_key)
        if scaling_key in self.spans and scaling not in ROPE_SCALING_TYPES:
            raise self.fail(scaling_key, f"{scaling!r} is not one of {', '.join(ROPE_SCALING_TYPES)}",
                            self.value_offset(scaling_key))

    def experts(self, arch: str) -> None:
        count_key, used_key = f"{arch}.expert_count", f"{arch}.expert_used_count"
        groups_key, groups_used_key = f"{arch}.expert_group_count", f"{arch}.expert_group_used_count"
        n_expert = self.integer(count_key) or 0
        groups = self.integer(groups_key) or 0
        groups_used = self.integer(groups_used_key) or 0
        used = self.meta.get(used_key, 0)
        if used_key in self.spans and self.value_type(used_key) == _ARRAY:
            used_max = max(used, default=0) if isinstance(used, list) else None
        else:
            used_max = self.integer(used_key) or 0
        if used_max is None:
            return   # a per-layer array longer than any layer count: llama.cpp throws
        where = count_key if count_key in self.spans else used_key if used_key in self.spans else None
        problem = None
        if not 0 <= n_expert <= LLAMA_MAX_EXPERTS:
            problem = f"expert_count {n_expert} is not within 0 to {LLAMA_MAX_EXPERTS}"
        elif used_max > n_expert or used_max < 0:
            problem = f"expert_used_count {used_max} is above expert_count {n_expert}"
        elif n_expert > 0 and used_max == 0:
            problem = f"expert_count {n_expert} but expert_used_count 0"
        elif n_expert > 0 and not 0 <= groups < n_expert:
            problem = f"expert_group_count {groups} is not below expert_count {n_expert}"
        elif n_expert > 0 and groups > 1 and (n_expert % groups or not 0 < groups_used < groups):
            problem = (f"expert_group_count {groups} must divide expert_count {n_expert} and exceed "
                       f"expert_group_used_count {groups_used} > 0")
        elif n_expert == 0 and groups != 0:
            problem = f"expert_group_count {groups} without experts"
        if problem is not None:
            key = where or groups_key
            raise self.fail(key, problem + " (llama.cpp asserts on it)", self.value_offset(key))


def _rwkv_unescape(token: bytes) -> bytes:
    """llama.cpp's llama_unescape_rwkv_token, on bytes."""
    out = bytearray()
    escaping, hex_left, acc = False, 0, 0
    for c in token:
        if hex_left:
            acc = ((acc << 4) + (c - 87 if c >= 97 else c - 48)) & 0xFF
            hex_left -= 1
            if not hex_left:
                out.append(acc)
                acc = 0
        elif escaping:
            if c == 0x78:       # x
                hex_left = 2
            else:
                out.append({0x74: 9, 0x6E: 10, 0x72: 13}.get(c, c))
            escaping = False
        elif c == 0x5C:         # backslash
            escaping = True
        else:
            out.append(c)
    return bytes(out)


def _show(token: bytes) -> str:
    text = token.decode("utf-8", "backslashreplace")
    return repr(text if len(text) <= 40 else text[:40] + "...")
