"""CI for a git-model repository: the GitHub Actions workflow that comments ``git model diff`` on a pull request,
and the scheduled one that monitors production.

``git model init --ci github`` writes :func:`github_workflow` to
``.github/workflows/model-diff.yml`` and :func:`monitor_workflow` to
``.github/workflows/model-monitor.yml``, and stages them. The project's own copy of
that file is the same text with the project's install and repro steps
(:func:`github_workflow` with ``own_project=True``); a test keeps them equal
and runs actionlint on both.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from gitmodel import gitrepo
from gitmodel.errors import GitModelError, InvalidPath

WORKFLOW_PATH = ".github/workflows/model-diff.yml"
COMMENT_MARKER = "<!-- git-model-diff -->"   # `git model diff --md` prints it; the workflow finds its comment by it

_WORKFLOW = """\
# Comments the metric and behaviour diff of every pull request, once: later pushes update the
# same comment. Written by `git model init --ci github`; edit it freely (init leaves it alone then).
name: model diff

on:
  pull_request:

permissions:
  contents: read
  pull-requests: write    # to post the comment (pull requests from forks get a read-only token)

jobs:
  model-diff:
    runs-on: ubuntu-latest
    steps:
      - uses: actions/checkout@v4
        with:
          fetch-depth: 0    # the base branch too: git-model reads its metrics from git objects
      - uses: actions/setup-python@v5
        with:
          python-version: "3.11"
      - name: Install git-model
        run: @INSTALL@
      - name: Reproduce the eval results
        run: @REPRO@
      - name: Warn when the committed metrics are not what the checkpoints give
        run: |
          if ! git diff --quiet -- metrics; then
            echo "::warning::dvc repro changed metrics/: the committed metrics are stale or not reproducible"
          fi
      - name: Diff the base branch against the pull request
        env:
          BASE_REF: ${{ github.base_ref }}
        run: |
          git model diff "origin/$BASE_REF" HEAD --md > comment.md
          git model diff "origin/$BASE_REF" HEAD --examples > model-diff.txt
          git model diff "origin/$BASE_REF" HEAD --examples --json > model-diff.json
      - name: Keep the full report (the comment is cut to fit GitHub's limit)
        uses: actions/upload-artifact@v4
        with:
          name: model-diff-report
          path: |
            model-diff.txt
            model-diff.json
      - name: Post or update the comment
        uses: actions/github-script@v7
        with:
          script: |
            const fs = require("fs");
            const marker = "@MARKER@";
            const body = fs.readFileSync("comment.md", "utf8");
            const { owner, repo } = context.repo;
            const issue_number = context.issue.number;
            const comments = await github.paginate(github.rest.issues.listComments, { owner, repo, issue_number });
            const previous = comments.find((c) => c.body && c.body.includes(marker));
            if (previous) {
              await github.rest.issues.updateComment({ owner, repo, comment_id: previous.id, body });
            } else {
              await github.rest.issues.createComment({ owner, repo, issue_number, body });
            }
"""

# A user's repository installs the released package and pulls checkpoints from its DVC remote;
# git-model's own repository installs itself and builds the demo checkpoints from code.
USER_STEPS = {
    "@INSTALL@": "pip install git-model    # pin the version you run locally, e.g. git-model==X.Y.Z",
    "@REPRO@": "dvc repro --pull    # checkpoints come from your DVC remote: give it credentials as secrets",
}
OWN_STEPS = {
    "@INSTALL@": "pip install .",
    "@REPRO@": "dvc repro",
}


def github_workflow(own_project: bool = False) -> str:
    """The workflow text: for a user's repository, or (``own_project``) for git-model's own."""
    text = _WORKFLOW.replace("@MARKER@", COMMENT_MARKER)
    for placeholder, value in (OWN_STEPS if own_project else USER_STEPS).items():
        text = text.replace(placeholder, value)
    return text


MONITOR_PATH = ".github/workflows/model-monitor.yml"
MONITOR_MARKER = "<!-- git-model-monitor:{model} -->"   # one issue per model, found again by it

_MONITOR = r"""# Monitors the models in production: `git model drift` and `git model retrain-check` on the production
# logs, and one GitHub issue per model when an alert fires (opened once, then updated). Written by
# `git model init --ci github`; edit it freely (init leaves it alone then).
#
# The schedule follows each model's risk tier (params.yaml models.<name>.risk, tiers.<risk>.schedule):
# the Monday run checks the weekly (high-risk) models, the run on the 1st of the month the monthly ones.
# Point MODEL_LOGS (a repository variable) at the logs, and fetch them in the step that says so.
name: model monitor

on:
  schedule:
    - cron: "0 6 * * 1"     # weekly: models whose tier's schedule is weekly
    - cron: "0 6 1 * *"     # monthly: models whose tier's schedule is monthly
  workflow_dispatch:
    inputs:
      model:
        description: "Model to check (empty: every model)"
        required: false
        default: ""

permissions:
  contents: read
  issues: write      # to open or update the alert issue

jobs:
  monitor:
    runs-on: ubuntu-latest
    env:
      LOGS: ${{ vars.MODEL_LOGS || 'logs/' }}
    steps:
      - uses: actions/checkout@v4
        with:
          fetch-depth: 0    # release and stage tags: the baseline is MODEL#prod at its release
      - uses: actions/setup-python@v5
        with:
          python-version: "3.11"
      - name: Install git-model
        run: @INSTALL@
      - name: Fetch eval sets and checkpoints
        run: @PULL@
      - name: Fetch the production logs
        run: |
          # e.g. aws s3 sync "s3://my-bucket/logs/" "$LOGS", or gsutil -m rsync -r gs://my-bucket/logs "$LOGS"
          test -e "$LOGS" || { echo "::error::no production logs at $LOGS: set the MODEL_LOGS variable"; exit 1; }
      - name: Drift and retrain-check per model
        env:
          SCHEDULE: ${{ github.event.schedule }}
          ONLY: ${{ github.event.inputs.model }}
        run: |
          mkdir -p monitor
          if [ "$SCHEDULE" = "0 6 * * 1" ]; then want=weekly; days=7
          elif [ "$SCHEDULE" = "0 6 1 * *" ]; then want=monthly; days=31
          else want=any; days=7
          fi
          since=$(date -u -d "$days days ago" +%Y-%m-%d)
          git model status --json > monitor/status.json
          models=$(python - "$want" "$ONLY" <<'EOF'
          import json, sys
          want, only = sys.argv[1], sys.argv[2]
          for m in json.load(open("monitor/status.json"))["models"]:
              if "prod" in m["stages"] and (only in ("", m["model"])) and want in ("any", m["tier"]["schedule"]):
                  print(m["model"])
          EOF
          )
          status=0
          for model in $models; do
            code=0
            git model drift "$model" --log "$LOGS" --since "$since" --md > "monitor/$model.md" || code=$?
            echo >> "monitor/$model.md"
            echo '```' >> "monitor/$model.md"
            git model retrain-check "$model" --log "$LOGS" --since "$since" >> "monitor/$model.md" || {
              rc=$?; if [ "$rc" -gt "$code" ]; then code=$rc; fi; }
            echo '```' >> "monitor/$model.md"
            if [ "$code" -eq 1 ]; then touch "monitor/$model.alert"
            elif [ "$code" -gt 1 ]; then status=$code
            fi
          done
          exit "$status"
      - name: Open or update one issue per model that alerts
        uses: actions/github-script@v7
        with:
          script: |
            const fs = require("fs");
            const { owner, repo } = context.repo;
            const alerts = fs.readdirSync("monitor").filter((f) => f.endsWith(".alert"));
            for (const file of alerts) {
              const model = file.slice(0, -".alert".length);
              const marker = "@MARKER@".replace("{model}", model);
              const body = `${marker}\n${fs.readFileSync(`monitor/${model}.md`, "utf8")}`.slice(0, 65000);
              const title = `Model monitor: ${model} needs attention`;
              const open = await github.paginate(github.rest.issues.listForRepo, { owner, repo, state: "open" });
              const previous = open.find((i) => i.body && i.body.includes(marker));
              if (previous) {
                await github.rest.issues.update({ owner, repo, issue_number: previous.number, body });
              } else {
                await github.rest.issues.create({ owner, repo, title, body });
              }
            }
"""

MONITOR_USER_STEPS = {
    "@INSTALL@": USER_STEPS["@INSTALL@"],
    "@PULL@": "dvc pull    # the baseline's eval set and prod's checkpoint: give your DVC remote credentials as secrets",
}


def monitor_workflow() -> str:
    """The scheduled monitor's text (``.github/workflows/model-monitor.yml``)."""
    text = _MONITOR.replace("@MARKER@", MONITOR_MARKER)
    for placeholder, value in MONITOR_USER_STEPS.items():
        text = text.replace(placeholder, value)
    return text


@dataclass
class CiResult:
    path: str        # relative to the root
    status: str      # "created" | "unchanged" (same text) | "kept" (a different file is there: left alone)

    def to_dict(self) -> dict:
        return {"path": self.path, "status": self.status}


def _check_target(root: Path, path: str = WORKFLOW_PATH) -> Path:
    target = root / path
    for part in (root / ".github", root / ".github/workflows", target):
        if part.is_symlink():
            raise InvalidPath(f"{part.relative_to(root)} is a symlink: git-model writes only real files "
                              "inside the repository", hint=f"remove the link, or write {path} by hand")
    if target.exists() and not target.is_file():
        raise InvalidPath(f"{path} exists and is not a file")
    return target


def write_github_workflow(root: Path, path: str = WORKFLOW_PATH, text: str | None = None) -> CiResult:
    """Write a workflow into ``root`` and stage it; idempotent, and never overwrites an edited file."""
    from gitmodel.fsutil import atomic_write

    root = Path(root)
    target = _check_target(root, path)
    text = github_workflow() if text is None else text
    if target.exists():
        same = target.read_bytes() == text.encode("utf-8")
        return CiResult(path, "unchanged" if same else "kept")
    target.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(target, text)
    gitrepo.stage(root, [path])
    return CiResult(path, "created")


def init_with_ci(kind: str, start: Path | None = None):
    """``git model init --ci KIND``: :func:`project.init`, then the CI workflow.

    The workflow's target is checked before init changes anything, so a refusal
    leaves the repository as it was. Returns (InitResult, CiResult).
    """
    from gitmodel import project

    if kind != "github":
        raise GitModelError(f"unknown CI kind {kind!r}: git-model writes a workflow for github "
                          "(GitLab CI: see the README)")
    root = gitrepo.find_root(start)
    _check_target(root)
    _check_target(root, MONITOR_PATH)
    result = project.init(root)
    result.ci = write_github_workflow(root)
    result.monitor = write_github_workflow(root, MONITOR_PATH, monitor_workflow())
    return result, result.ci
