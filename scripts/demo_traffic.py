"""The demo's live traffic: reviews sent to a running `git model serve`, one user per request stream.

    python scripts/demo_traffic.py URL EVALSET [--requests 600] [--negated 0.0] [--users 200] [--seed 0]

Requests are chat completions whose user message is a review of the eval set, drawn with a seeded
random generator; ``--negated`` is the share drawn from the reviews with a negation ("was not good"),
the slice where a model biased toward "positive" goes wrong. Each request names one of ``--users``
users, so the server's canary split is sticky per user. Prints how many requests each version and stage
answered (the ``X-Model-Version`` / ``X-Model-Stage`` headers) and the canary's share.
"""
from __future__ import annotations

import argparse
import http.client
import json
import random
import sys
from collections import Counter
from urllib.parse import urlparse


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("url")
    parser.add_argument("evalset")
    parser.add_argument("--requests", type=int, default=600)
    parser.add_argument("--negated", type=float, default=0.0)
    parser.add_argument("--users", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    with open(args.evalset, encoding="utf-8") as f:
        reviews = [json.loads(line)["input"] for line in f if line.strip()]
    negated = [r for r in reviews if " not " in f" {r} "]
    plain = [r for r in reviews if r not in negated]
    rng = random.Random(args.seed)
    where = urlparse(args.url)
    conn = http.client.HTTPConnection(where.hostname, where.port, timeout=60)
    answered: Counter = Counter()
    failed = 0
    for _ in range(args.requests):
        review = rng.choice(negated if rng.random() < args.negated else plain)
        body = json.dumps({"messages": [{"role": "user", "content": review}],
                           "user": f"user-{rng.randrange(args.users)}"})
        conn.request("POST", "/v1/chat/completions", body=body, headers={"Content-Type": "application/json"})
        answer = conn.getresponse()
        answer.read()
        if answer.status != 200:
            failed += 1
        answered[(answer.getheader("X-Model-Version"), answer.getheader("X-Model-Stage"))] += 1
    conn.close()
    total = sum(answered.values())
    for (version, stage), n in sorted(answered.items(), key=lambda kv: kv[0][1] or "", reverse=True):
        print(f"  {stage:7} {version:8} {n:5} requests ({n / total:.1%})")
    print(f"  {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
