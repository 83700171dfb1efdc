"""CI for a git-model repository: the GitHub Actions workflow that comments ``git model diff`` on a pull request.

``git model init --ci github`` writes :func:`github_workflow` to
``.github/workflows/model-diff.yml`` and stages it. The project's own copy of
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


@dataclass
class CiResult:
    path: str        # relative to the root
    status: str      # "created" | "unchanged" (same text) | "kept" (a different file is there: left alone)

    def to_dict(self) -> dict:
        return {"path": self.path, "status": self.status}


def _check_target(root: Path) -> Path:
    target = root / WORKFLOW_PATH
    for part in (root / ".github", root / ".github/workflows", target):
        if part.is_symlink():
            raise InvalidPath(f"{part.relative_to(root)} is a symlink: git-model writes only real files "
                              "inside the repository", hint=f"remove the link, or write {WORKFLOW_PATH} by hand")
    if target.exists() and not target.is_file():
        raise InvalidPath(f"{WORKFLOW_PATH} exists and is not a file")
    return target


def write_github_workflow(root: Path) -> CiResult:
    """Write the workflow into ``root`` and stage it; idempotent, and never overwrites an edited file."""
    from gitmodel.fsutil import atomic_write

    root = Path(root)
    target = _check_target(root)
    text = github_workflow()
    if target.exists():
        same = target.read_bytes() == text.encode("utf-8")
        return CiResult(WORKFLOW_PATH, "unchanged" if same else "kept")
    target.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(target, text)
    gitrepo.stage(root, [WORKFLOW_PATH])
    return CiResult(WORKFLOW_PATH, "created")


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
    result = project.init(root)
    result.ci = write_github_workflow(root)
    return result, result.ci
