"""The project's own repository is a git-model repository: `dvc repro` on a fresh
copy builds the demo checkpoints (the same bytes as dvc.lock records) and finds
every eval up to date."""
from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from ruamel.yaml import YAML

from tests.conftest import ROOT, git

FILES = ["dvc.yaml", "dvc.lock", "params.yaml", ".dvcignore", ".gitignore", ".dvc/config", ".dvc/.gitignore",
         "models/.gitignore", "evalsets/.gitignore"]


@pytest.mark.slow
def test_dvc_repro_on_a_fresh_copy_builds_the_demo_and_matches_the_lock(tmp_path):
    repo = tmp_path / "project"
    for rel in FILES:
        (repo / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(ROOT / rel, repo / rel)
    shutil.copytree(ROOT / "metrics", repo / "metrics")
    shutil.copytree(ROOT / "src/gitmodel/demo", repo / "src/gitmodel/demo",
                    ignore=shutil.ignore_patterns("__pycache__"))
    git(repo, "init", "-q")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "fresh clone")
    proc = subprocess.run(["dvc", "repro"], cwd=repo, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Running stage 'demo'" in proc.stdout
    # the committed lock already holds these exact bytes: the evals are up to date, nothing re-runs
    assert "Running stage 'eval@" not in proc.stdout, proc.stdout
    lock = YAML(typ="safe").load((ROOT / "dvc.lock").read_text())
    outs = {o["path"]: o["md5"] for o in lock["stages"]["demo"]["outs"]}
    from gitmodel.fsutil import md5_file

    for path, md5 in outs.items():
        assert md5_file(repo / path) == md5, path
    assert git(repo, "status", "--porcelain") == ""
