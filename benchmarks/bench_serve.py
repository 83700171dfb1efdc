"""`git model serve` against llama-cpp-python's own server on the same demo checkpoint.

    python benchmarks/bench_serve.py [--requests 2000] [--clients 8] [--rounds 2] [--dir DIR] [--keep]

Builds a scratch git-model repository (demo v1 weights released as v1.0.0 in prod, demo v2 weights
released as v1.1.0), then sends ``--requests`` completions (eval-set inputs, ``max_tokens`` 8,
temperature 0) from ``--clients`` concurrent keep-alive clients on 127.0.0.1 to, side by side:

* ``llama_cpp.server``: ``python -m llama_cpp.server`` on the v1 checkpoint (n_ctx 2048, 1 thread, as
  our eval settings load it);
* ``ours``: ``git model serve`` (prod v1.0.0), no production log;
* ``ours --log``: the same writing the production log;
* ``ours --log, switch``: the same while, halfway through, ``git model promote ... v1.1.0 --stage prod``
  moves prod to the v2 weights (the server polls the tags every 0.2 s).

Each contender runs in its own server process, started before and stopped after its run; each round
starts with another contender, so that a noisy machine slows them alike. The log's own cost is also
timed alone (``make_record`` + ``LogWriter.write`` of 20,000 lines), as a share of our time per request:
on a shared machine the end-to-end difference between two runs is mostly noise. Printed: errors, p50 / p95
latency and throughput (medians over rounds), and the ratios against the goals: zero errors, our p50
and p95 within 1.2x of llama_cpp.server's, the log costing under 5 % of throughput, no failed request
across the switch. This script prints (it is a script, not the library).
"""
from __future__ import annotations

import argparse
import http.client
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

import benchkit

MODEL = "sentiment"
ENV = {**os.environ, "DVC_NO_ANALYTICS": "1"}
BIN = Path(sys.executable).parent


def sh(cwd: Path, *cmd: str, check: bool = True) -> str:
    return benchkit.sh(cwd, *cmd, env=ENV, check=check)


def build_repo(base: Path) -> tuple[Path, Path, list[str]]:
    demo = base / "demo"
    sh(base, sys.executable, "-m", "gitmodel.demo", str(demo), "--evalset-dir", str(demo))
    repo = base / "repo"
    repo.mkdir()
    gm = [str(BIN / "git-model")]
    sh(repo, "git", "init", "-q", "-b", "main")
    sh(repo, "git", "config", "user.name", "Bench")
    sh(repo, "git", "config", "user.email", "bench@example.com")
    sh(repo, *gm, "init")
    sh(repo, "git", "commit", "-q", "-m", "init")
    shutil.copy(demo / "sentiment.jsonl", repo / "evalsets" / "sentiment.jsonl")
    sh(repo, *gm, "evalset", "add", "evalsets/sentiment.jsonl")
    for weights, version in (("v1", "v1.0.0"), ("v2", "v1.1.0")):
        shutil.copy(demo / f"sentiment-{weights}.gguf", repo / "models" / "sentiment.gguf")
        sh(repo, *gm, "add", "models/sentiment.gguf")
        sh(repo, *gm, "eval", MODEL, "--evalset", "sentiment")
        sh(repo, "git", "add", "-A")
        sh(repo, "git", "commit", "-q", "-m", f"{weights} weights")
        sh(repo, *gm, "release", MODEL, version)
        if version == "v1.0.0":
            sh(repo, *gm, "promote", MODEL, version, "--stage", "prod")
    prompts = [json.loads(line)["input"] for line in (demo / "sentiment.jsonl").read_text().splitlines()]
    return repo, demo / "sentiment-v1.gguf", prompts


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Process:
    def __init__(self, cmd: list[str], cwd: Path, ready: re.Pattern | None, port: int | None, err: Path):
        self.err = err
        with open(err, "wb") as f:
            self.proc = subprocess.Popen(cmd, cwd=cwd, env=ENV, stdout=subprocess.DEVNULL, stderr=f)
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise SystemExit(f"{cmd[:4]} exited: {err.read_text()}")
            if ready is not None:
                found = ready.search(err.read_text(errors="replace"))
                if found:
                    self.port = int(found.group(1))
                    return
            elif port is not None and _healthy(port):
                self.port = port
                return
            time.sleep(0.1)
        raise SystemExit(f"{cmd[:4]} did not start: {err.read_text()}")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def _healthy(port: int) -> bool:
    try:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
        conn.request("GET", "/v1/models")
        ok = conn.getresponse().status == 200
        conn.close()
        return ok
    except OSError:
        return False


def load(port: int, prompts: list[str], requests: int, clients: int, halfway=None) -> dict:
    """``requests`` completions from ``clients`` threads; ``halfway()`` is called once half are sent."""
    latencies: list[float] = []
    errors: list[str] = []
    versions: dict[str, int] = {}
    counter = iter(range(requests))
    lock = threading.Lock()
    half = threading.Event()

    def client() -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        for i in counter:
            body = json.dumps({"prompt": prompts[i % len(prompts)], "max_tokens": 8, "temperature": 0})
            start = time.perf_counter()
            try:
                conn.request("POST", "/v1/completions", body=body, headers={"Content-Type": "application/json"})
                answer = conn.getresponse()
                answer.read()
                status, version = answer.status, answer.getheader("X-Model-Version")
            except (OSError, http.client.HTTPException) as e:
                status, version = 0, None
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
                errors.append(repr(e))
            elapsed = time.perf_counter() - start
            with lock:
                latencies.append(elapsed)
                if status != 200 and status:
                    errors.append(f"HTTP {status}")
                versions[version] = versions.get(version, 0) + 1
                if len(latencies) == requests // 2:
                    half.set()
        conn.close()

    threads = [threading.Thread(target=client) for _ in range(clients)]
    started = time.perf_counter()
    for t in threads:
        t.start()
    if halfway is not None:
        half.wait()
        halfway()
    for t in threads:
        t.join()
    wall = time.perf_counter() - started
    ordered = sorted(latencies)
    return {"errors": len(errors), "p50": ordered[len(ordered) // 2] * 1000,
            "p95": ordered[int(len(ordered) * 0.95)] * 1000, "rps": requests / wall, "versions": versions,
            "first_errors": errors[:3]}


def line_cost(folder: Path, n: int = 20000) -> float:
    """Seconds per production log line, written alone: the log's own cost, apart from the machine's noise."""
    from gitmodel import prodlog

    with prodlog.LogWriter(folder, MODEL) as writer:
        started = time.perf_counter()
        for i in range(n):
            writer.write(prodlog.make_record(model=MODEL, version="v1.0.0", stage="prod", input=f"review {i}",
                                             output=" positive", label="positive", output_tokens=1,
                                             latency_ms=1.5, status=200, user="0123456789abcdef"))
        return (time.perf_counter() - started) / n


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--dir", type=Path)
    parser.add_argument("--keep", action="store_true")
    args = parser.parse_args()
    with benchkit.scratch("bench-serve-", args.dir, args.keep) as base:
        repo, checkpoint, prompts = build_repo(base)
        ours_ready = re.compile(r"^Serving \S+ on http://127\.0\.0\.1:(\d+):", re.M)
        serve = [str(BIN / "git-model"), "serve", MODEL, "--port", "0", "--poll", "0.2"]
        results: dict[str, list[dict]] = {}

        def ours(name: str, extra: list[str], switch: bool = False) -> None:
            sh(repo, str(BIN / "git-model"), "rollback", MODEL, "--to", "v1.0.0") if switch_back[0] else None
            switch_back[0] = False
            server = Process(serve + extra, repo, ours_ready, None, base / f"{name}.err")
            try:
                def promote() -> None:
                    sh(repo, str(BIN / "git-model"), "promote", MODEL, "v1.1.0", "--stage", "prod")
                    switch_back[0] = True

                results.setdefault(name, []).append(
                    load(server.port, prompts, args.requests, args.clients, promote if switch else None))
            finally:
                server.stop()

        def llama_server() -> None:
            port = free_port()
            theirs = Process([sys.executable, "-m", "llama_cpp.server", "--model", str(checkpoint), "--port",
                              str(port), "--n_ctx", "2048", "--n_threads", "1", "--n_threads_batch", "1",
                              "--seed", "0"], repo, None, port, base / "llama.err")
            try:
                results.setdefault("llama_cpp.server", []).append(load(theirs.port, prompts, args.requests,
                                                                       args.clients))
            finally:
                theirs.stop()

        switch_back = [False]
        contenders = [llama_server, lambda: ours("ours", []),
                      lambda: ours("ours --log", ["--log", str(base / "logs")])]
        for round_ in range(args.rounds):
            # each round starts with another contender: a machine that slows down over a round slows all alike
            for run in contenders[round_ % 3:] + contenders[:round_ % 3]:
                run()
            ours("ours --log, switch", ["--log", str(base / "logs")], switch=True)
            print(f"round {round_ + 1}/{args.rounds} done", file=sys.stderr)

        def median(name: str, key: str) -> float:
            return statistics.median(r[key] for r in results[name])

        print(f"{args.requests} completions (max_tokens 8) from {args.clients} clients on 127.0.0.1, "
              f"medians of {args.rounds} rounds")
        print(f"{'':22} {'errors':>6} {'p50 ms':>8} {'p95 ms':>8} {'req/s':>8}")
        for name in results:
            errors = sum(r["errors"] for r in results[name])
            print(f"{name:22} {errors:>6} {median(name, 'p50'):>8.1f} {median(name, 'p95'):>8.1f} "
                  f"{median(name, 'rps'):>8.1f}")
        theirs_p50, theirs_p95 = median("llama_cpp.server", "p50"), median("llama_cpp.server", "p95")
        p50, p95 = median("ours", "p50") / theirs_p50, median("ours", "p95") / theirs_p95
        cost = 1 - median("ours --log", "rps") / median("ours", "rps")
        switched = results["ours --log, switch"]
        print(f"ours / llama_cpp.server: p50 {p50:.2f}x, p95 {p95:.2f}x (goal <= 1.2x)")
        print(f"the production log costs {cost:.1%} of throughput (goal < 5 %)")
        served: dict = {}
        for r in switched:
            for version, n in r["versions"].items():
                served[version] = served.get(version, 0) + n
        print(f"across the switch: {sum(r['errors'] for r in switched)} failed requests (goal 0); versions served "
              f"over the rounds: {served} (the promotion runs the gate, so on a busy machine a round may end first)")
        for name in results:
            for r in results[name]:
                if r["first_errors"]:
                    print(f"{name}: first errors {r['first_errors']}")
        lines = sum(1 for f in (base / "logs").iterdir() for _ in f.open())
        print(f"production log: {lines} lines written; one line alone (make_record + LogWriter.write) costs "
              f"{line_cost(base / 'cost') * 1e6:.1f} us, {line_cost(base / 'cost') * median('ours', 'rps'):.1%} "
              "of our time per request")


if __name__ == "__main__":
    main()
