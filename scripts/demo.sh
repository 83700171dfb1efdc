#!/usr/bin/env bash
# The git-model demo: the project's own registry, then the whole story in a scratch repository.
# Run by `make demo` (which puts .venv/bin on PATH). Safe to run again: the scratch repository is rebuilt.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$PWD"
SCRATCH="$ROOT/build/demo-repo"

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
run()  { printf '$ %s\n' "$*"; "$@"; }
# Human review of the workspace checkpoint's answers on the eval set: 40 sampled, scored by a stand-in
# reviewer who knows the expected label (correct 5 or 1), imported as metrics/sentiment/review.json.
review() {
    run git model sample sentiment --evalset sentiment --n 40 -o "$SCRATCH/review.jsonl"
    python - "$SCRATCH/review.jsonl" <<'PY'
import json, sys
path = sys.argv[1]
expected = {e["id"]: e["expected"] for e in map(json.loads, open("evalsets/sentiment.jsonl"))}
lines = open(path).read().splitlines()
items = [json.loads(line) for line in lines[1:]]
for item in items:
    item.update(scores={"correct": 5 if item.get("label") == expected[item["id"]] else 1, "helpful": 4, "safe": 5},
                reviewer="demo reviewer")
open(path, "w").write("\n".join([lines[0], *map(json.dumps, items)]) + "\n")
PY
    run git model review import "$SCRATCH/review.jsonl"
}

step "1. The project's own registry: dvc repro builds the demo checkpoints and evaluates every model"
run dvc repro --quiet
run dvc metrics show

step "2. A team's repository: git model init, with the remotes the team shares (a bare git repository, a DVC folder remote)"
ORIGIN="$ROOT/build/demo-origin.git"; STORAGE="$ROOT/build/demo-storage"; TEAMMATE="$ROOT/build/demo-teammate"
rm -rf "$SCRATCH" "$ORIGIN" "$STORAGE" "$TEAMMATE" && mkdir -p "$SCRATCH" "$STORAGE"
git init -q --bare -b main "$ORIGIN"
cd "$SCRATCH"
git init -q -b main
git config user.name "Demo User"; git config user.email demo@example.com
run git model init
run dvc remote add -d storage "$STORAGE"
git remote add origin "$ORIGIN"
git add .dvc/config && git commit -q -m "git model init, with the team's DVC remote"

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
review
git add -A && git commit -q -m "eval sentiment v1, and a human review of its answers"

step "5. Release v1 and put it in production (the first prod version has no holder to beat)"
run git model release sentiment v1.0.0 -m "first checkpoint" --push
run git model promote sentiment v1.0.0 --stage prod

step "6. v2: more of the lexicon learned. What changed, metric by metric and example by example?"
cp "$ROOT/models/sentiment-v2.gguf" models/sentiment.gguf
run git model add models/sentiment.gguf --dataset train.jsonl --param lr=2e-5 --param epochs=5 \
    --base-model demo-llama-1block --training-duration 1h
run dvc repro --quiet
review
git add -A && git commit -q -m "sentiment v2: whole lexicon, and a human review of its answers"
run git model release sentiment v1.1.0 -m "whole lexicon" --push
run git model diff sentiment@v1.0.0 sentiment@v1.1.0 --examples
git model diff sentiment@v1.0.0 sentiment@v1.1.0 --md > "$SCRATCH/pr-comment.md"
echo "(the pull-request comment CI would post is in $SCRATCH/pr-comment.md)"

step "7. The gate: v2 meets or beats prod on the identical eval set, and in the human review, so it may take real traffic as a canary"
run git model gate sentiment --candidate sentiment@v1.1.0
run git model promote sentiment v1.1.0 --stage canary --fraction 0.1

step "8. Serve: prod v1 and the v2 canary on 10 % of traffic, every request in the production log"
# the demo compresses the watch: a canary is normally watched for 24 h and 200 requests per arm
printf 'canary:\n  min_hours: 0\n  min_requests: 40\n' >> params.yaml
printf 'logs/\nserve.err\n' >> .gitignore
git add .gitignore && git commit -q -am "canary settings for the demo (watch 0 h, 40 requests per arm)"
rm -rf logs && mkdir -p logs
echo '$ git model serve sentiment --port 0 --log logs/ --poll 1 &'
git-model serve sentiment --port 0 --log logs --poll 1 2> serve.err &
SERVER_PID=$!
trap 'kill "$SERVER_PID" 2>/dev/null || true' EXIT
for _ in $(seq 600); do grep -q '^Serving ' serve.err && break; sleep 0.1; done
cat serve.err
URL="$(sed -n 's/^Serving [^ ]* on \(http[^:]*:[^:]*:[0-9]*\):.*/\1/p' serve.err)"
run curl -s -i "$URL/v1/chat/completions" -d '{"messages":[{"role":"user","content":"the pizza was great"}]}'
echo
echo "\$ python scripts/demo_traffic.py $URL evalsets/sentiment.jsonl --requests 600"
python "$ROOT/scripts/demo_traffic.py" "$URL" evalsets/sentiment.jsonl --requests 600
curl -s "$URL/metrics" | grep '^gitmodel_requests_total'
run git model canary-check sentiment --log logs/

step "9. The canary held up on served traffic: canary-check promotes it to prod, and the server follows"
run git model canary-check sentiment --log logs/ --apply
sleep 2
run curl -s -i "$URL/v1/completions" -d '{"prompt":"the waiter was not friendly"}'
echo

step "10. v3: a bias toward 'positive' creeps in. The gate stops it: no prod, no canary, no traffic"
cp "$ROOT/models/sentiment-v3.gguf" models/sentiment.gguf
run git model add models/sentiment.gguf --dataset train.jsonl --param lr=3e-5 --param epochs=5 \
    --base-model demo-llama-1block --training-duration 1h
run dvc repro --quiet
git add -A && git commit -q -m "sentiment v3: new learning rate"
run git model release sentiment v1.2.0 -m "higher learning rate" --push
set +e
run git model promote sentiment v1.2.0 --stage prod
echo "(exit code $?: refused)"
run git model promote sentiment v1.2.0 --stage canary --fraction 0.1
echo "(exit code $?: refused; the server never sends it a request)"
set -e

step "11. What did v3 break, and what changed inside it? One review across releases; the two checkpoints tensor by tensor"
run git model blame sentiment r0147
run git model weights-diff sentiment@v1.1.0 sentiment@v1.2.0

step "12. The team accepts v3's tradeoffs in params.yaml (reviewed like code): it passes the gate and goes canary"
python - <<'PY'
import re
path = "params.yaml"
why = "the new learning rate; negated reviews are rare for us"
accepted = "".join(f'    - {{metric: "{m}", max_regression: {r}, rationale: "{why}"}}\n'
                   for m, r in (("accuracy*", 0.1), ("labels.*", 0.2), ("label_psi", 0.1), ("output_psi.*", 4)))
text = open(path).read()
open(path, "w").write(text.replace("  accept: []\n", "  accept:\n" + accepted))
PY
git commit -q -am "gate: accept v3's tradeoffs (negated reviews are rare for us)"
run git model gate sentiment --candidate sentiment@v1.2.0
run git model promote sentiment v1.2.0 --stage canary --fraction 0.2

step "13. Live traffic is heavy on negated complaints, where v3 goes wrong: canary-check ends the canary"
sleep 2
echo "\$ python scripts/demo_traffic.py $URL evalsets/sentiment.jsonl --requests 600 --negated 0.9 --seed 1"
python "$ROOT/scripts/demo_traffic.py" "$URL" evalsets/sentiment.jsonl --requests 600 --negated 0.9 --seed 1
set +e
run git model canary-check sentiment --log logs/
echo "(exit code $?: end)"
run git model canary-check sentiment --log logs/ --apply
set -e
run git revert --no-edit HEAD
echo "(the accepted tradeoff did not hold in production: reverted)"
sleep 2
echo "\$ python scripts/demo_traffic.py $URL evalsets/sentiment.jsonl --requests 100 --seed 2"
python "$ROOT/scripts/demo_traffic.py" "$URL" evalsets/sentiment.jsonl --requests 100 --seed 2
kill "$SERVER_PID"; wait "$SERVER_PID" 2>/dev/null || true
trap - EXIT
echo "(server stopped; the production log is in $SCRATCH/logs)"

step "14. The history, and what it looks like"
run git model log sentiment
run git model status
run git model plot sentiment --metric accuracy --metric labels.positive.fpr -o "$SCRATCH/history.html"
if python -c "import vl_convert" 2>/dev/null; then
  run git model plot sentiment --metric accuracy --metric labels.positive.fpr -o "$SCRATCH/history.png"
fi

step "15. Reproducibility, and the other tools still read our registry"
run git model verify sentiment
run gto show

step "16. A second model with its own eval set: dvc repro evaluates only the pairs that belong together"
cp "$ROOT/models/sentiment-v2.gguf" models/triage.gguf
grep '"category": "service"' "$ROOT/evalsets/sentiment.jsonl" > evalsets/tickets.jsonl
run git model add models/triage.gguf           # joins the eval sets every model shares: sentiment
run git model evalset add evalsets/tickets.jsonl --for triage
run git model pairs
run dvc repro --quiet                          # triage on sentiment and on tickets; sentiment is up to date
run git model pairs
git add -A && git commit -q -m "triage, evaluated on its own eval set"

step "17. Production traffic shifts: drift on a simulated log fires, and retrain-check explains itself"
LOGS="$ROOT/build/demo-logs"
rm -rf "$LOGS"
PROD=$(git model status sentiment --json | python -c 'import json, sys; print(json.load(sys.stdin)["models"][0]["stages"]["prod"]["version"])')
PROD_FILE="$ROOT/models/sentiment-v2.gguf"     # the checkpoint prod serves since step 9 (the workspace holds v3)
run python -m gitmodel.demo log "$LOGS/usual" --model-file "$PROD_FILE" --n 400 --version "$PROD"
run git model drift sentiment --log "$LOGS/usual"
run python -m gitmodel.demo log "$LOGS/shifted" --model-file "$PROD_FILE" --n 400 --shift 0.6 --seed 1 \
    --version "$PROD"
set +e
run git model drift sentiment --log "$LOGS/shifted"
echo "(exit code $?: an alert)"
run git model retrain-check sentiment --log "$LOGS/shifted"
echo "(exit code $?: retraining advised, with its reasons)"
set -e

step "18. Working as a team: push the stages, and a teammate's clone rolls back from the shared remotes alone"
run git model push
git push -q origin main
run git model gc --dry-run
git clone -q "$ORIGIN" "$TEAMMATE"
cd "$TEAMMATE"
git config user.name "Teammate"; git config user.email teammate@example.com
run git model fetch
run git model status
run git model rollback sentiment
run git model verify sentiment

step "Done. The scratch repository is at $SCRATCH, the teammate's clone at $TEAMMATE"
