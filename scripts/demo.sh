#!/usr/bin/env bash
# The git-model demo: the project's own registry, then the whole story in a scratch repository.
# Run by `make demo` (which puts .venv/bin on PATH). Safe to run again: the scratch repository is rebuilt.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$PWD"
SCRATCH="$ROOT/build/demo-repo"

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
run()  { printf '$ %s\n' "$*"; "$@"; }

step "1. The project's own registry: dvc repro builds the demo checkpoints and evaluates every model"
run dvc repro --quiet
run dvc metrics show

step "2. A team's repository: git model init"
rm -rf "$SCRATCH" && mkdir -p "$SCRATCH"
cd "$SCRATCH"
git init -q -b main
git config user.name "Demo User"; git config user.email demo@example.com
run git model init
git commit -q -m "git model init"

step "3. Track checkpoint v1 with its lineage, and the eval set"
cp "$ROOT/models/sentiment-v1.gguf" models/sentiment.gguf
cp "$ROOT/evalsets/sentiment.jsonl" evalsets/sentiment.jsonl
printf '{"text": "training data stands in here"}\n' > train.jsonl
run git model add models/sentiment.gguf --dataset train.jsonl --param lr=2e-5 --param epochs=3 \
    --base-model demo-llama-1block --training-duration 45m
run git model evalset add evalsets/sentiment.jsonl
git add train.jsonl && git commit -q -m "track sentiment v1 and the sentiment eval set"

step "4. Evaluate v1 (llama.cpp, temperature 0) through dvc repro; a second run is a cache hit"
run dvc repro --quiet
run git model eval sentiment --evalset sentiment
git add -A && git commit -q -m "eval sentiment v1"

step "5. v2: more of the lexicon learned; re-add, re-evaluate, compare"
cp "$ROOT/models/sentiment-v2.gguf" models/sentiment.gguf
run git model add models/sentiment.gguf --dataset train.jsonl --param lr=2e-5 --param epochs=5 \
    --base-model demo-llama-1block --training-duration 1h
run dvc repro --quiet
run dvc metrics diff HEAD
git add -A && git commit -q -m "sentiment v2"

step "6. Reproducibility: re-run v2 from the DVC cache and compare the outputs byte for byte"
run git model verify sentiment

step "Done. The scratch repository is at $SCRATCH"
