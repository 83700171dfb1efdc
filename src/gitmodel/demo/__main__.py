"""``python -m gitmodel.demo OUTDIR [--evalset-dir DIR]``: build the demo artifacts.
``python -m gitmodel.demo log OUT --model-file F --n N [--shift S] [--negated N]``: a simulated production log."""
from __future__ import annotations

import argparse
import hashlib
import sys

from gitmodel.demo import build


def log_main(argv: list[str]) -> int:
    from gitmodel.demo.traffic import write_log

    parser = argparse.ArgumentParser(
        prog="python -m gitmodel.demo log",
        description="Write a production log (one file per UTC day into OUT) of a demo checkpoint really "
        "answering generated reviews, drawn like the eval set's, or shifted, or heavy on negated reviews.")
    parser.add_argument("out", help="folder for the log files (<model>-YYYY-MM-DD.jsonl)")
    parser.add_argument("--model-file", required=True, help="the GGUF checkpoint that answers")
    parser.add_argument("--n", type=int, required=True, help="number of requests")
    parser.add_argument("--shift", type=float, default=0.0,
                        help="share of requests from a shifted mix (other categories, longer texts), 0 to 1")
    parser.add_argument("--negated", type=float, default=0.0,
                        help="share of the unshifted requests that are negated reviews (\"the soup was not good\"), "
                        "0 to 1: where a model biased toward positive answers otherwise")
    parser.add_argument("--seed", type=int, default=0, help="seed of the generated requests")
    parser.add_argument("--model", default="sentiment", help="model name written in the log")
    parser.add_argument("--version", default="v1.0.0", help="model version written in the log")
    parser.add_argument("--days", type=int, default=7, help="days the requests are spread over, up to now")
    args = parser.parse_args(argv)
    if args.n < 1 or not 0 <= args.shift <= 1 or not 0 <= args.negated <= 1 or args.days < 1:
        parser.error("--n and --days must be at least 1, --shift and --negated within [0, 1]")
    for path in write_log(args.out, args.model_file, args.n, shift=args.shift, negated=args.negated, seed=args.seed,
                          model=args.model, version=args.version, days=args.days):
        print(path)
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["log"]:
        return log_main(argv[1:])
    parser = argparse.ArgumentParser(
        prog="python -m gitmodel.demo",
        description="Write the demo sentiment checkpoints (v1, v2, v3) and their eval sets, byte for byte "
        "the same on every machine. `python -m gitmodel.demo log -h`: a simulated production log.",
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
