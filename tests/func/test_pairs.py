"""Several models in one repository: only the declared model x eval set pairs are evaluated, each
re-run only when what shapes its result changes -- with real git, DVC (`dvc repro`, `dvc status`)
and llama.cpp on the demo checkpoints."""
from __future__ import annotations

import json
import re
import shutil
import subprocess

import pytest
from click.testing import CliRunner

from conftest import git, snapshot_tree, status_porcelain
from gitmodel.cli import cli

pytestmark = pytest.mark.slow


def gm(*args):
    return CliRunner().invoke(cli, list(args), prog_name="git model")


def gm_ok(*args):
    result = gm(*args)
    assert result.exit_code == 0, (args, result.stdout, result.stderr)
    return result


def repro(repo) -> list[str]:
    """The stages `dvc repro` ran."""
    proc = subprocess.run(["dvc", "repro"], cwd=repo, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return sorted(re.findall(r"Running stage '([^']+)'", proc.stdout))


def dvc_stale(repo) -> list[str]:
    """The stages `dvc status` calls changed."""
    proc = subprocess.run(["dvc", "status", "--json"], cwd=repo, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    return sorted(json.loads(proc.stdout or "{}"))


def status_stale(repo) -> list[str]:
    """The pairs `git model status` calls stale, named as DVC names their stages."""
    doc = json.loads(gm_ok("status", "--json").stdout)
    return sorted(f"eval@{m['model']}-{x['evalset']}" for m in doc["models"] for x in m["metrics"] if x["stale"])


def set_override(repo, evalset, text):
    params = repo / "params.yaml"
    params.write_text(params.read_text().replace(f"    {evalset}: {{}}\n", f"    {evalset}: {text}\n"))


@pytest.fixture
def two_models(gm_repo, demo_dir):
    """Models a, b; eval sets x, y (for a) and z (for b), tracked and committed, nothing evaluated."""
    repo = gm_repo
    shutil.copy(demo_dir / "sentiment-v1.gguf", repo / "models" / "a.gguf")
    shutil.copy(demo_dir / "sentiment-v2.gguf", repo / "models" / "b.gguf")
    lines = (demo_dir / "sentiment.jsonl").read_text().splitlines(keepends=True)
    for i, name in enumerate("xyz"):
        (repo / "evalsets" / f"{name}.jsonl").write_text("".join(lines[i * 12:(i + 1) * 12]))
    gm_ok("add", "models/a.gguf")
    gm_ok("add", "models/b.gguf")
    gm_ok("evalset", "add", "evalsets/x.jsonl", "--for", "a")
    gm_ok("evalset", "add", "evalsets/y.jsonl", "--for", "a")
    gm_ok("evalset", "add", "evalsets/z.jsonl", "--for", "b")
    git(repo, "commit", "-q", "-m", "two models, three eval sets")
    return repo


def test_repro_runs_the_declared_pairs_and_reruns_only_what_a_change_touches(two_models):
    repo = two_models
    assert repro(repo) == ["eval@a-x", "eval@a-y", "eval@b-z"]
    assert sorted(p.relative_to(repo).as_posix() for p in (repo / "metrics").rglob("*.json")) == [
        "metrics/a/x.json", "metrics/a/y.json", "metrics/b/z.json"]
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "evaluated")
    assert dvc_stale(repo) == status_stale(repo) == []

    # a timeout cannot change an output: nothing is stale, nothing runs
    params = repo / "params.yaml"
    params.write_text(params.read_text().replace("timeout: 30", "timeout: 5").replace("retries: 3", "retries: 9")
                      .replace("concurrency: 4", "concurrency: 2"))
    assert dvc_stale(repo) == status_stale(repo) == []
    assert repro(repo) == []

    # one eval set's override re-runs its pairs only
    set_override(repo, "x", "{label_prefix: ' '}")
    assert dvc_stale(repo) == status_stale(repo) == ["eval@a-x"]
    table = json.loads(gm_ok("pairs", "--json").stdout)
    assert [(p["model"], p["evalset"], p["state"]) for p in table["pairs"]] == [
        ("a", "x", "stale"), ("a", "y", "up to date"), ("b", "z", "up to date")]
    assert repro(repo) == ["eval@a-x"]
    assert dvc_stale(repo) == status_stale(repo) == []

    # a setting every pair depends on re-runs them all
    params.write_text(params.read_text().replace("seed: 0", "seed: 1"))
    assert dvc_stale(repo) == status_stale(repo) == ["eval@a-x", "eval@a-y", "eval@b-z"]
    assert repro(repo) == ["eval@a-x", "eval@a-y", "eval@b-z"]

    # pairing b with x runs that one pair
    result = gm_ok("evalset", "add", "evalsets/x.jsonl", "--for", "b")
    assert "Evaluated on it (b); `dvc repro` runs 1 new pair" in result.stdout
    assert dvc_stale(repo) == status_stale(repo) == ["eval@b-x"]
    assert repro(repo) == ["eval@b-x"]


def test_a_new_eval_set_without_for_joins_every_model_and_says_which(two_models, demo_dir):
    repo = two_models
    (repo / "evalsets" / "smoke.jsonl").write_text((demo_dir / "sentiment.jsonl").read_text().splitlines()[0] + "\n")
    result = gm_ok("evalset", "add", "evalsets/smoke.jsonl")
    assert "Evaluated on it (every model: a, b); `dvc repro` runs 2 new pairs" in result.stdout
    # a new model joins the eval sets every model has (smoke), not another model's own
    shutil.copy(demo_dir / "sentiment-v3.gguf", repo / "models" / "c.gguf")
    result = gm_ok("add", "models/c.gguf", "--json")
    assert json.loads(result.stdout)["evalsets"] == ["smoke"]
    result = gm_ok("add", "models/c.gguf", "--evalset", "z")
    assert "Evaluated on: smoke, z" in result.stdout


def test_log_gate_and_status_of_b_never_read_x_unless_paired(two_models):
    repo = two_models
    repro(repo)
    # metrics of b on x from a pairing since undone by hand: an orphan
    gm_ok("evalset", "add", "evalsets/x.jsonl", "--for", "b")
    gm_ok("eval", "b", "--evalset", "x")
    dvc_yaml = repo / "dvc.yaml"
    unpaired = dvc_yaml.read_text().replace("      b-x: {model: b, evalset: x}\n", "")
    assert unpaired != dvc_yaml.read_text()
    dvc_yaml.write_text(unpaired)
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "evaluated, and b on x by hand")
    gm_ok("release", "b", "v1.0.0")
    shown = gm_ok("show", "b@v1.0.0", "--json").stdout
    assert "metrics/b/z.json" in shown and "metrics/b/x.json" not in shown
    log = gm_ok("log", "b", "--json").stdout
    assert '"z"' in log and '"x"' not in log
    status = json.loads(gm_ok("status", "b", "--json").stdout)["models"][0]["metrics"]
    assert {m["evalset"]: m["orphaned"] for m in status} == {"x": True, "z": False}
    table = json.loads(gm_ok("pairs", "--json").stdout)
    assert table["orphans"] == [{"model": "b", "evalset": "x",
                                 "paths": ["metrics/b/x.json", "metrics/b/x.outputs.jsonl"]}]
    gm_ok("promote", "b", "v1.0.0", "--stage", "prod")
    gate = gm("gate", "b", "--json")
    assert gate.exit_code == 0, gate.stderr
    assert [r["evalset"] for r in json.loads(gate.stdout)["results"]] == ["z"]
    # the user says so: pruned with git rm, staged
    result = gm_ok("pairs", "prune")
    assert result.stdout.splitlines()[:2] == ["  - metrics/b/x.json", "  - metrics/b/x.outputs.jsonl"]
    assert "D  metrics/b/x.json" in status_porcelain(repo)


# the eval stage `git model init` wrote before pairs
MATRIX_STAGE = """\
matrix:
  model: [a]
  evalset: [x]
cmd: git model eval ${item.model} --evalset ${item.evalset}
deps:
  - models/${item.model}.gguf
  - evalsets/${item.evalset}.jsonl
params:
  - eval
metrics:
  - metrics/${item.model}/${item.evalset}.json:
      cache: false
outs:
  - metrics/${item.model}/${item.evalset}.outputs.jsonl:
      cache: false
"""


def test_init_migrates_a_matrix_keeping_stages_metrics_and_dvc_lock(gm_repo, demo_dir):
    """A repository from before pairs: a matrix eval stage, the user's own stage, metrics committed."""
    repo = gm_repo
    from ruamel.yaml import YAML

    shutil.copy(demo_dir / "sentiment-v1.gguf", repo / "models" / "a.gguf")
    lines = (demo_dir / "sentiment.jsonl").read_text().splitlines(keepends=True)
    (repo / "evalsets" / "x.jsonl").write_text("".join(lines[:10]))
    gm_ok("add", "models/a.gguf")
    gm_ok("evalset", "add", "evalsets/x.jsonl")
    yaml = YAML()
    matrix_stage = yaml.load(MATRIX_STAGE)
    data = yaml.load((repo / "dvc.yaml").read_text())
    data["stages"]["eval"] = matrix_stage
    data["stages"]["prepare"] = yaml.load("cmd: echo prepared > prepared.txt\nouts: [prepared.txt]\n")
    with open(repo / "dvc.yaml", "w") as f:
        yaml.dump(data, f)
    params = repo / "params.yaml"
    params.write_text(params.read_text().replace("  evalsets:\n    x: {}\n", ""))
    assert repro(repo) == ["eval@a-x", "prepare"]
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "the matrix era")
    metrics = (repo / "metrics" / "a" / "x.json").read_bytes()

    result = gm_ok("init")
    assert "  + dvc.yaml\n" in result.stdout and "  + dvc.lock\n" in result.stdout
    migrated = YAML(typ="safe").load((repo / "dvc.yaml").read_text())
    assert migrated["stages"]["eval"]["foreach"] == {"a-x": {"model": "a", "evalset": "x"}}
    assert migrated["stages"]["prepare"] == {"cmd": "echo prepared > prepared.txt", "outs": ["prepared.txt"]}
    assert (repo / "metrics" / "a" / "x.json").read_bytes() == metrics
    # nothing that was up to date runs again, and a timeout is no longer a dependency
    assert dvc_stale(repo) == []
    params.write_text(params.read_text().replace("timeout: 30", "timeout: 5"))
    assert dvc_stale(repo) == [] and repro(repo) == []
    assert gm_ok("init").stdout.startswith("git-model is already set up")


# ----------------------------------------------------------------------------- bad input


def test_for_an_unknown_model_is_refused_with_did_you_mean(two_models):
    repo = two_models
    (repo / "evalsets" / "w.jsonl").write_text((repo / "evalsets" / "x.jsonl").read_text())
    before, status = snapshot_tree(repo), status_porcelain(repo)
    result = gm("evalset", "add", "evalsets/w.jsonl", "--for", "bb")
    assert result.exit_code == 3
    assert result.stderr == ("Error: unknown model 'bb': did you mean 'b'?\n"
                             "  hint: track it first with `git model add models/bb.gguf`\n")
    assert snapshot_tree(repo) == before and status_porcelain(repo) == status


def test_an_eval_of_an_undeclared_pair_is_refused_and_writes_nothing(two_models):
    """Its metrics would be orphaned at once: never read as results, yet committed by a hurried `git add`."""
    repo = two_models
    before, status = snapshot_tree(repo), status_porcelain(repo)
    result = gm("eval", "b", "--evalset", "x")
    assert result.exit_code == 3
    assert result.stderr == ("Error: b is not evaluated on x: dvc.yaml does not declare the pair (b's eval sets: z)\n"
                             "  hint: pair them with `git model evalset add evalsets/x.jsonl --for b`, then run "
                             "`dvc repro` (or this command again)\n")
    assert snapshot_tree(repo) == before and status_porcelain(repo) == status
    gm_ok("evalset", "add", "evalsets/x.jsonl", "--for", "b")
    gm_ok("eval", "b", "--evalset", "x")           # declared now: evaluated
    assert (repo / "metrics/b/x.json").is_file()


def test_a_pairing_naming_an_untracked_eval_set_is_refused(two_models):
    repo = two_models
    dvc_yaml = repo / "dvc.yaml"
    dvc_yaml.write_text(dvc_yaml.read_text().replace("b-z: {model: b, evalset: z}",
                                                     "b-z: {model: b, evalset: z}\n      b-zz: {model: b, evalset: zz}"))
    before = snapshot_tree(repo)
    result = gm("pairs")
    assert result.exit_code == 3
    assert result.stderr.startswith("Error: dvc.yaml (stages.eval) names eval set 'zz', which is not tracked "
                                    "(no evalsets/zz.jsonl.dvc): did you mean 'z'?\n")
    assert "hint: track it with `git model evalset add evalsets/zz.jsonl`, or remove the pair" in result.stderr
    assert gm("add", "models/a.gguf", "--evalset", "zz").exit_code == 3
    assert snapshot_tree(repo) == before


def test_release_of_a_model_with_no_eval_set_says_how_to_add_one(two_models, demo_dir):
    repo = two_models
    shutil.copy(demo_dir / "sentiment-v3.gguf", repo / "models" / "c.gguf")
    gm_ok("add", "models/c.gguf")          # a, b share no eval set: c joins none
    git(repo, "commit", "-q", "-m", "c")
    result = gm("release", "c", "v1.0.0")
    assert result.exit_code == 3
    assert result.stderr == (
        "Error: model 'c' is evaluated on no eval set at HEAD: no pair of the eval stage in dvc.yaml names it\n"
        "  hint: pair it with one (`git model evalset add evalsets/NAME.jsonl --for c`, or "
        "`git model add models/c.gguf --evalset NAME`), run `dvc repro` and commit\n")
    assert git(repo, "tag").strip() == ""


def test_unpairing_an_eval_set_a_models_gate_depends_on_is_refused(two_models):
    repo = two_models
    repro(repo)
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "evaluated")
    gm_ok("release", "b", "v1.0.0")
    gm_ok("promote", "b", "v1.0.0", "--stage", "prod")
    before, status = snapshot_tree(repo), status_porcelain(repo)
    result = gm("pairs", "remove", "z")
    assert result.exit_code == 3
    assert result.stderr == (
        "Error: the gate of model 'b' compares on eval set 'z': b#prod (b@v1.0.0) was released with "
        "metrics/b/z.json\n  hint: keep the pair, or pass --force to stop gating b on z\n")
    assert snapshot_tree(repo) == before and status_porcelain(repo) == status
    # a eval set no stage holder gates on goes; its metrics stay, orphaned
    result = gm_ok("pairs", "remove", "y")
    assert "orphaned (kept until `git model pairs prune`): metrics/a/y.json" in result.stdout
    assert (repo / "metrics" / "a" / "y.json").is_file()


def test_prune_refuses_an_orphan_git_does_not_hold_and_removes_nothing(two_models):
    repo = two_models
    (repo / "metrics" / "a").mkdir(parents=True)
    (repo / "metrics" / "a" / "z.json").write_text("{}\n")       # a pair nobody declared, never committed
    before, status = snapshot_tree(repo), status_porcelain(repo)
    assert json.loads(gm_ok("pairs", "--json").stdout)["orphans"] == [
        {"model": "a", "evalset": "z", "paths": ["metrics/a/z.json"]}]
    result = gm("pairs", "prune")
    assert result.exit_code == 3
    assert result.stderr == ("Error: metrics/a/z.json: orphaned metrics that git does not hold; not removed\n"
                             "  hint: commit it first (git add metrics/a/z.json), or move it away yourself\n")
    assert snapshot_tree(repo) == before and status_porcelain(repo) == status


def test_pairs_on_a_repository_without_pairs_says_how_to_add_one(gm_repo):
    result = gm_ok("pairs")
    assert result.stdout == ("No pairs: no model is evaluated on any eval set yet.\n"
                             "  pair one: git model evalset add evalsets/<name>.jsonl --for <model>\n")
    assert json.loads(gm_ok("pairs", "--json").stdout) == {"pairs": [], "orphans": []}
