"""The scheduled monitor workflow `git model init --ci github` writes beside the pull-request one."""
from __future__ import annotations

import json
import subprocess
import sys
import textwrap

from gitmodel import ci
from gitmodel.cli import cli
from tests.conftest import git
from tests.func.test_diff import actionlint


def test_init_ci_github_also_writes_the_monitor_workflow_that_passes_actionlint(gm_repo, runner):
    result = runner.invoke(cli, ["init", "--ci", "github"])
    assert result.exit_code == 0, result.stderr
    assert result.stdout.splitlines()[1] == ("Wrote .github/workflows/model-monitor.yml (staged): drift and "
                                             "retrain-check on a schedule, an issue per model that alerts")
    path = gm_repo / ci.MONITOR_PATH
    assert path.read_text() == ci.monitor_workflow()
    assert "A  .github/workflows/model-monitor.yml" in git(gm_repo, "status", "--porcelain").splitlines()
    lint = actionlint(path)
    assert lint.returncode == 0, lint.stdout + lint.stderr
    text = path.read_text()
    assert '- cron: "0 6 * * 1"' in text and '- cron: "0 6 1 * *"' in text and "workflow_dispatch:" in text
    assert "issues: write" in text and "<!-- git-model-monitor:{model} -->" in text
    assert "github.rest.issues.update" in text and "github.rest.issues.create" in text
    assert 'git model drift "$model" --log "$LOGS" --since "$since" --md' in text
    again = runner.invoke(cli, ["init", "--ci", "github", "--json"])
    assert json.loads(again.stdout)["monitor"] == {"path": ci.MONITOR_PATH, "status": "unchanged"}


def selected(tmp_path, status: dict, want: str, only: str = "") -> list[str]:
    """The models the workflow's selection step picks from `git model status --json`."""
    text = ci.monitor_workflow()
    body = text[text.index("<<'EOF'\n") + len("<<'EOF'\n"): text.index("          EOF\n")]
    (tmp_path / "monitor").mkdir(exist_ok=True)
    (tmp_path / "monitor" / "status.json").write_text(json.dumps(status))
    out = subprocess.run([sys.executable, "-", want, only], input=textwrap.dedent(body), text=True,
                         capture_output=True, cwd=tmp_path, check=True)
    return out.stdout.split()


def test_the_schedule_follows_each_models_risk_tier(gm_repo, tmp_path):
    def model(name, schedule, prod=True):
        return {"model": name, "stages": {"prod": {}} if prod else {}, "tier": {"schedule": schedule}}

    status = {"models": [model("chat", "weekly"), model("tagger", "monthly"), model("draft", "weekly", prod=False)]}
    assert selected(tmp_path, status, "weekly") == ["chat"]
    assert selected(tmp_path, status, "monthly") == ["tagger"]
    assert selected(tmp_path, status, "any") == ["chat", "tagger"]
    assert selected(tmp_path, status, "any", "tagger") == ["tagger"]
    # and status says so from params.yaml
    from gitmodel import params

    (gm_repo / "params.yaml").write_text((gm_repo / "params.yaml").read_text().replace(
        "\nmodels: {}", "\nmodels:\n  chat: {risk: high}"))   # the top-level section, not eval.models
    assert params.tier(gm_repo, "chat")["schedule"] == "weekly"
    assert params.tier(gm_repo, "tagger")["schedule"] == "monthly"
