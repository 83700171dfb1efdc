"""``python -m gitmodel.demo OUTDIR [--evalset-dir DIR]``: build the demo artifacts."""
from __future__ import annotations

import argparse
import hashlib

from gitmodel.demo import build


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m gitmodel.demo",
        description="Write the demo sentiment checkpoints (v1, v2, v3) and their eval sets, byte for byte "
        "the same on every machine.",
    )
    parser.add_argument("outdir", help="folder for sentiment-v1.gguf, sentiment-v2.gguf, sentiment-v3.gguf")
    parser.add_argument("--evalset-dir", help="folder for sentiment.jsonl and sentiment-answers.jsonl (default: OUTDIR)")
    args = parser.parse_args(argv)
    for path in build(args.outdir, args.evalset_dir).values():
        data = path.read_bytes()
        print(f"{path}  {len(data)} bytes  md5 {hashlib.md5(data).hexdigest()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
