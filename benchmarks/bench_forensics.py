"""Forensics at scale: `git model blame` over a long release history, `git model weights-diff` over big files.

1. blame: a repository with N releases of one model (default 1,000), built with `git fast-import` as
   bench_history.py builds its history, each release with a metrics file and a 400-line outputs file
   in which a few examples change answer; times `git model blame MODEL ID` against the floor of
   reading every release's outputs blob through one `git cat-file --batch`. Target: under 0.5 s.
2. weights-diff: two GGUF files of F16 tensors (default 1 GiB each, llama-shaped: blocks of
   attention and FFN matrices), the second the first plus small noise in every tensor; times
   `git model weights-diff a b --json` against `cat a b > /dev/null` on a cold page cache (after
   `posix_fadvise(DONTNEED)`, which drops a file's clean pages) and a warm one, and reports the
   peak memory of the weights-diff process (ru_maxrss of the child). Targets: within 2x of reading
   both files once; peak memory under 300 MB.

    python benchmarks/bench_forensics.py                      # both, 1,000 releases and 1 GiB files
    python benchmarks/bench_forensics.py --releases 200 --gib 0.25 --repeat 3

Needs git and git-model on PATH (the project's venv).
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_history  # noqa: E402  (its history builder's pieces: metrics files, versions, tag messages)

MODEL, EVALSET = bench_history.MODEL, bench_history.EVALSET
OUTPUTS = f"metrics/{MODEL}/{EVALSET}.outputs.jsonl"
EXAMPLES = 400
BLAMED = "r0142"


# ----------------------------------------------------------------------------- blame


def outputs_for(i: int) -> bytes:
    """400 output lines; example k answers wrong in releases where (i // (k % 50 + 1)) is odd."""
    lines = []
    for k in range(EXAMPLES):
        expected = "positive" if k % 2 else "negative"
        wrong = (i // (k % 50 + 1)) % 2 == 1
        label = ("negative" if expected == "positive" else "positive") if wrong else expected
        record = {"id": f"r{k:04d}", "output": label, "label": label, "confidence": 0.9, "correct": not wrong,
                  "output_tokens": 2, "scores": {"negative": -0.1, "positive": -2.3}}
        lines.append(json.dumps(record, ensure_ascii=False, separators=(",", ":")))
    return ("\n".join(lines) + "\n").encode()


def build_history(root: Path, n: int, env: dict) -> None:
    import hashlib

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))
    from gitmodel import dvcyaml, history, refs

    run = bench_history.run
    run(["git", "init", "-q", "-b", "main"], root, env)
    run(["dvc", "init", "-q"], root, env)
    for folder in ("models", "evalsets"):
        (root / folder).mkdir()
    evalset = "".join(json.dumps({"id": f"r{k:04d}", "input": f"review number {k}",
                                  "labels": ["negative", "positive"],
                                  "expected": "positive" if k % 2 else "negative"}) + "\n" for k in range(EXAMPLES))
    (root / "evalsets" / f"{EVALSET}.jsonl").write_text(evalset)
    evalset_md5 = hashlib.md5(evalset.encode()).hexdigest()
    (root / "evalsets" / f"{EVALSET}.jsonl.dvc").write_text(
        f"outs:\n- md5: {evalset_md5}\n  size: {len(evalset)}\n  hash: md5\n  path: {EVALSET}.jsonl\n")
    (root / "evalsets" / ".gitignore").write_text(f"/{EVALSET}.jsonl\n")
    model_md5 = hashlib.md5(b"bench").hexdigest()
    dvc_yaml = dvcyaml.TEMPLATE.replace("artifacts: {}", f"artifacts:\n  {MODEL}:\n    path: models/{MODEL}.gguf\n"
                                        "    type: model")
    (root / "dvc.yaml").write_text(dvc_yaml)
    (root / "params.yaml").write_text("eval:\n  temperature: 0\n  seed: 0\n")
    run(["git", "add", "-A"], root, env)
    run(["git", "commit", "-q", "-m", "bench repository"], root, env)
    run(["dvc", "add", "-q", f"evalsets/{EVALSET}.jsonl"], root, env)   # the eval set in the DVC cache
    stream = []

    def data(payload: bytes) -> None:
        stream.append(b"data %d\n" % len(payload) + payload + b"\n")

    for i in range(1, n + 1):
        when = bench_history.BASE_TIME + 60 * i
        doc = bench_history.metrics_doc(i, n, model_md5, evalset_md5)
        stream.append(b"commit refs/heads/main\nmark :%d\n" % i)
        stream.append(b"committer Bench <bench@example.com> %d +0000\n" % when)
        data(f"release {i}".encode())
        if i == 1:
            stream.append(b"from refs/heads/main^0\n")
        stream.append(f"M 100644 inline {bench_history.METRICS}\n".encode())
        data((json.dumps(doc, indent=2) + "\n").encode())
        stream.append(f"M 100644 inline {OUTPUTS}\n".encode())
        data(outputs_for(i))
        version = refs.Version.parse(bench_history.version_of(i))
        record = {"schema_version": 1, "model": MODEL, "version": str(version), "path": f"models/{MODEL}.gguf",
                  "md5": model_md5, "evalsets": {EVALSET: {"md5": evalset_md5,
                                                            "metrics": history.headline(doc["metrics"])}}}
        stream.append(f"tag {MODEL}@{version}\nfrom :{i}\n".encode())
        stream.append(b"tagger Bench <bench@example.com> %d +0000\n" % (when + 1))
        data(refs.release_message(MODEL, version, f"release {i}", record).encode())
    run(["git", "fast-import", "--quiet"], root, env, stdin=b"".join(stream))
    run(["git", "reset", "-q", "--hard", "main"], root, env)


def bench_blame(n: int, repeat: int, env: dict) -> dict:
    root = Path(tempfile.mkdtemp(prefix=f"bench-blame-{n}-"))
    try:
        started = time.perf_counter()
        build_history(root, n, env)
        print(f"\n== blame over {n} releases (built in {time.perf_counter() - started:.1f} s) ==")
        check = subprocess.run(["git", "model", "blame", MODEL, BLAMED, "--json"], cwd=root, env=env,
                               capture_output=True, text=True)
        if check.returncode != 0:
            raise SystemExit(f"git model blame failed: {check.stderr}")
        rows = [r for r in json.loads(check.stdout)["rows"] if r.get("output") is not None]
        flips = sum(1 for r in rows if r.get("correct_flipped"))
        print(f"  git model blame {MODEL} {BLAMED}: {len(rows)} rows, {flips} correctness flips marked")
        ours = bench_history.timed(["git", "model", "blame", MODEL, BLAMED], root, env, repeat)
        cpu = statistics.median(timed_child(["git", "model", "blame", MODEL, BLAMED], {**env, "PWD": str(root)},
                                            cwd=root)[2] for _ in range(repeat))
        floor = bench_history.timed(f"git for-each-ref --format='%(refname):{OUTPUTS}' 'refs/tags/{MODEL}@*' "
                                    "| git cat-file --batch >/dev/null", root, env, repeat)
        m_ours, m_floor = statistics.median(ours), statistics.median(floor)
        print(f"  git model blame         {m_ours * 1000:7.0f} ms   (target < 500 ms: "
              f"{'met' if m_ours < 0.5 else 'NOT met'}; CPU of the process and its git children {cpu * 1000:.0f} ms)")
        print(f"  floor: every outputs blob through one git cat-file --batch  {m_floor * 1000:7.0f} ms")
        return {"blame_ms": m_ours * 1000, "floor_ms": m_floor * 1000}
    finally:
        shutil.rmtree(root, ignore_errors=True)


# ----------------------------------------------------------------------------- weights-diff

GGUF_STRING, GGUF_UINT32 = 8, 4
F16 = 1
ALIGN = 32


def _gguf_string(text: str) -> bytes:
    raw = text.encode()
    return struct.pack("<Q", len(raw)) + raw


def write_f16_gguf(path: Path, shapes: list[tuple[str, tuple[int, int]]], seed: int, base_seed: int,
                   noise: float) -> None:
    """A llama-shaped GGUF file of F16 tensors, streamed a slice at a time: each tensor is the seeded
    values of ``base_seed``, plus seeded noise of scale ``noise`` when ``seed`` differs from it."""
    import numpy as np

    kv = [("general.architecture", GGUF_STRING, "llama"), ("general.name", GGUF_STRING, path.stem),
          ("general.file_type", GGUF_UINT32, 1)]
    head = b"GGUF" + struct.pack("<IQQ", 3, len(shapes), len(kv))
    for key, vtype, value in kv:
        head += _gguf_string(key) + struct.pack("<I", vtype)
        head += _gguf_string(value) if vtype == GGUF_STRING else struct.pack("<I", value)
    offset = 0
    for name, (rows, cols) in shapes:
        head += _gguf_string(name) + struct.pack("<IQQ", 2, cols, rows) + struct.pack("<IQ", F16, offset)
        offset += -(-(rows * cols * 2) // ALIGN) * ALIGN
    with open(path, "wb") as f:
        f.write(head + b"\0" * (-len(head) % ALIGN))
        for t, (name, (rows, cols)) in enumerate(shapes):
            base = np.random.default_rng([base_seed, t])
            other = np.random.default_rng([seed, t])
            left = rows * cols
            while left:
                n = min(left, 1 << 22)
                values = base.standard_normal(n, dtype=np.float32) * 0.02
                if seed != base_seed:
                    values += other.standard_normal(n, dtype=np.float32) * noise
                f.write(values.astype("<f2").tobytes())
                left -= n
            f.write(b"\0" * (-(rows * cols * 2) % ALIGN))


def llama_shapes(gib: float) -> list[tuple[str, tuple[int, int]]]:
    """Blocks of a 2048-wide llama (attention and FFN matrices) until the file holds ``gib`` GiB of F16."""
    d, ff, vocab = 2048, 5632, 32000
    shapes = [("token_embd.weight", (vocab, d))]
    budget = int(gib * (1 << 30)) // 2 - vocab * d * 2     # elements left for the blocks
    block = 0
    per_block = 4 * d * d + 3 * d * ff
    while budget >= per_block:
        for name, shape in (("attn_q", (d, d)), ("attn_k", (d, d)), ("attn_v", (d, d)), ("attn_output", (d, d)),
                            ("ffn_gate", (ff, d)), ("ffn_up", (ff, d)), ("ffn_down", (d, ff))):
            shapes.append((f"blk.{block}.{name}.weight", shape))
        budget -= per_block
        block += 1
    while budget >= d * d:       # fill up to the size asked with square matrices of one more block
        shapes.append((f"blk.{block}.attn_{len(shapes)}.weight", (d, d)))
        budget -= d * d
    shapes.append(("output.weight", (vocab, d)))
    return shapes


def drop_cache(*paths: Path) -> None:
    for path in paths:
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)


def timed_child(cmd: list[str], env: dict, before=None, cwd=None) -> tuple[float, float, float]:
    """Wall seconds, peak RSS (MB) and CPU seconds (user + system, every thread) of one run of ``cmd``
    in a fresh child. CPU time barely moves when other processes take the cores; wall time does."""
    if before:
        before()
    started = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - started
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{' '.join(cmd)} failed: {proc.stderr.read().decode()[-1000:]}")
    return seconds, usage.ru_maxrss / 1024, usage.ru_utime + usage.ru_stime


def bench_weights(gib: float, repeat: int, env: dict) -> dict:
    folder = Path(tempfile.mkdtemp(prefix="bench-weights-"))
    try:
        shapes = llama_shapes(gib)
        a, b = folder / "a.gguf", folder / "b.gguf"
        started = time.perf_counter()
        write_f16_gguf(a, shapes, 1, 1, 0.0)
        write_f16_gguf(b, shapes, 2, 1, 0.001)
        size = a.stat().st_size / (1 << 30)
        print(f"\n== weights-diff of two {size:.2f} GiB F16 files, {len(shapes)} tensors "
              f"(written in {time.perf_counter() - started:.1f} s) ==")
        ours_cmd = ["git", "model", "weights-diff", str(a), str(b), "--json"]
        cat_cmd = ["sh", "-c", f"cat '{a}' '{b}' > /dev/null"]
        rows = {}
        for cache, before in (("cold", lambda: drop_cache(a, b)), ("warm", None)):
            if cache == "warm":
                timed_child(cat_cmd, env)       # warm both files up
            ours = [timed_child(ours_cmd, env, before) for _ in range(repeat)]
            theirs = [timed_child(cat_cmd, env, before) for _ in range(repeat)]
            m_ours = statistics.median(t for t, _, _ in ours)
            m_cat = statistics.median(t for t, _, _ in theirs)
            cpu_ours = statistics.median(c for _, _, c in ours)
            cpu_cat = statistics.median(c for _, _, c in theirs)
            peak = max(mb for _, mb, _ in ours)
            rows[cache] = {"ours_s": m_ours, "cat_s": m_cat, "ratio": m_ours / m_cat, "peak_mb": peak}
            print(f"  {cache} cache:  git model weights-diff {m_ours:6.2f} s (CPU {cpu_ours:5.2f} s)   "
                  f"cat a b {m_cat:6.2f} s (CPU {cpu_cat:5.2f} s)   ratio {m_ours / m_cat:4.1f}x (target <= 2x)   "
                  f"peak RSS {peak:5.0f} MB (target < 300)")
        out = subprocess.run(ours_cmd, env=env, capture_output=True, text=True, check=True).stdout
        moved = json.loads(out)["counts"]["changed"]
        print(f"  sanity: {moved} of {len(shapes)} tensors reported as changed")
        return rows
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--releases", type=int, default=1000, help="releases in the blame history (default 1000)")
    parser.add_argument("--gib", type=float, default=1.0, help="size of each GGUF file in GiB (default 1)")
    parser.add_argument("--repeat", type=int, default=5, help="repetitions per command (default 5)")
    parser.add_argument("--only", choices=("blame", "weights"), help="run one of the two")
    args = parser.parse_args()
    for tool in ("git", "git-model", "dvc"):
        if shutil.which(tool) is None:
            raise SystemExit(f"{tool} is not on PATH (activate the project's venv)")
    env = {**os.environ, "DVC_NO_ANALYTICS": "1", "GIT_AUTHOR_NAME": "Bench", "GIT_AUTHOR_EMAIL": "bench@example.com",
           "GIT_COMMITTER_NAME": "Bench", "GIT_COMMITTER_EMAIL": "bench@example.com", "COLUMNS": "200"}
    print(f"bench_forensics: {args.repeat} repetitions per command, medians; {os.cpu_count()} cores; "
          f"python {sys.version.split()[0]}; own peak RSS so far {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024} MB")
    if args.only in (None, "blame"):
        bench_blame(args.releases, args.repeat, env)
    if args.only in (None, "weights"):
        bench_weights(args.gib, args.repeat, env)


if __name__ == "__main__":
    main()
