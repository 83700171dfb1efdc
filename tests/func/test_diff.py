"""`git model diff` on a real repository (the `released` fixture: one model, `sentiment`, released with the
demo v1, v2 and v3 weights and real metrics), checked against `dvc metrics diff` itself; and the CI workflow
that posts it on pull requests."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from gitmodel import ci
from gitmodel.cli import cli
from gitmodel.demo import V1_UNKNOWN
from tests.conftest import ROOT, git, snapshot_tree

V1, V2, V3 = "v1.0.0", "v1.2.0", "v1.10.0"   # demo v1, v2, v3 weights (tests/conftest.py RELEASES)
METRICS = "metrics/sentiment/sentiment.json"
OUTPUTS = "metrics/sentiment/sentiment.outputs.jsonl"
EVALSET = "evalsets/sentiment.jsonl"


def diff(runner, *args):
    return runner.invoke(cli, ["diff", *args], prog_name="git model")


def dvc_metrics_diff(repo: Path, *args: str) -> dict:
    dvc = str(Path(sys.executable).parent / "dvc")
    proc = subprocess.run([dvc, "metrics", "diff", *args, "--json"], cwd=repo, capture_output=True, text=True,
                          env={**os.environ, "DVC_NO_ANALYTICS": "1"})
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def set_gate(repo: Path, section: dict) -> None:
    from ruamel.yaml import YAML

    yaml = YAML(typ="safe", pure=True)
    data = yaml.load((repo / "params.yaml").read_text())
    data["gate"] = section
    with open(repo / "params.yaml", "w") as f:
        yaml.dump(data, f)


def outputs_at(repo: Path, rev: str) -> dict[str, dict]:
    return {r["id"]: r for r in map(json.loads, git(repo, "show", f"{rev}:{OUTPUTS}").splitlines())}


def test_json_is_what_dvc_metrics_diff_prints(released, runner):
    a, b = f"sentiment@{V1}", f"sentiment@{V3}"
    for extra in ([], ["--all"]):
        ours = diff(runner, a, b, "--json", *extra)
        assert ours.exit_code == 0, ours.stderr
        assert json.loads(ours.stdout) == dvc_metrics_diff(released, a, b, *extra)
    data = json.loads(diff(runner, a, b, "--json").stdout)
    assert list(data) == [METRICS]
    assert data[METRICS]["metrics.accuracy"] == {"old": 0.635, "new": 0.84, "diff": 0.84 - 0.635}


def test_not_comparable_is_said_loudly_and_json_still_matches_dvc(released, runner):
    path = released / EVALSET
    path.write_text("".join(line + "\n" for line in path.read_text().splitlines()[::2]))
    for args in (["evalset", "add", EVALSET], ["eval", "sentiment", "--evalset", "sentiment"]):
        assert runner.invoke(cli, args).exit_code == 0
    old_md5 = json.loads(git(released, "show", f"HEAD:{METRICS}"))["evalset"]["md5"]
    new_md5 = json.loads((released / METRICS).read_text())["evalset"]["md5"]
    warning = (f"NOT COMPARABLE: {METRICS} (sentiment on sentiment): eval set {EVALSET} md5 differs "
               f"(old {old_md5}, new {new_md5})")

    result = diff(runner)   # HEAD vs workspace
    assert result.exit_code == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == warning
    assert lines[1] == "  The numbers below come from different inputs: a change is not the checkpoint's doing."
    assert lines[2].split() == ["Path", "Metric", "HEAD", "workspace", "Change", "Verdict"]
    assert any(line.split()[:2] == [METRICS, "n"] and line.split()[2:4] == ["400", "200"] for line in lines)

    as_json = diff(runner, "--json")
    assert as_json.stderr == f"Warning: {warning}\n"
    data = json.loads(as_json.stdout)
    assert data == dvc_metrics_diff(released)
    assert data[METRICS]["evalset.md5"] == {"old": old_md5, "new": new_md5}   # the evidence, in dvc's own shape

    md = diff(runner, "--md").stdout
    assert (f"⚠️ **NOT COMPARABLE** (sentiment on sentiment): eval set {EVALSET} md5 differs (old {old_md5}, "
            f"new {new_md5}). The numbers below come from different inputs") in md
    assert "✅" not in md


def test_behavioural_diff_lists_the_examples_v2_fixed(released, runner):
    a, b = f"sentiment@{V1}", f"sentiment@{V2}"
    old, new = outputs_at(released, a), outputs_at(released, b)
    fixed = [i for i in new if old[i]["correct"] is False and new[i]["correct"] is True]
    broken = [i for i in new if old[i]["correct"] is True and new[i]["correct"] is False]
    assert fixed and len(fixed) > len(broken)
    inputs = {r["id"]: r["input"] for r in map(json.loads, (released / EVALSET).read_text().splitlines())}
    # v2 fixed reviews that rest on the words v1 never learned
    assert all(set(inputs[i].split()) & set(V1_UNKNOWN) for i in fixed)

    result = diff(runner, a, b, "--examples", "--json")
    assert result.exit_code == 0, result.stderr
    data = json.loads(result.stdout)
    assert set(data) == {"metrics", "comparability", "stale", "behaviour"}
    assert data["stale"] == {}
    assert data["comparability"] == {METRICS: {"comparable": True, "reason": None}}
    behaviour = data["behaviour"][METRICS]
    assert behaviour["wrong_to_correct"] == fixed and behaviour["correct_to_wrong"] == broken
    assert behaviour["matched"] == len(new) == 400 and behaviour["only_old"] == behaviour["only_new"] == []
    # the answered label: a tie answers none, so v1's ties that v2 answers are label changes too
    def answered(record):
        return None if record["tie"] else record["label"]

    assert behaviour["counts"]["label_changed"] == len([i for i in new if answered(old[i]) != answered(new[i])])
    assert behaviour["counts"]["label_changed"] > len([i for i in new if old[i]["label"] != new[i]["label"]])
    first = behaviour["examples"][fixed[0]]
    assert first["input"] == inputs[fixed[0]] and first["new"]["correct"] is True and first["old"]["correct"] is False
    assert set(behaviour["psi"]) == {"output_tokens", "confidence", "label"}
    assert behaviour["psi"]["label"]["band"] in ("stable", "moderate", "significant")

    text = diff(runner, a, b, "--examples").stdout.splitlines()
    assert f"  wrong -> correct {len(fixed)} · correct -> wrong {len(broken)} · " in "\n".join(text)
    # each example once, with everything that changed for it
    changed = behaviour["changes"]
    for id_ in changed:
        assert sum(1 for line in text if line.split()[:1] == [id_]) == 1
    line = next(line for line in text if line.split()[:1] == [fixed[0]])
    assert line.split(None, 1)[1] == ", ".join(changed[fixed[0]])
    assert changed[fixed[0]][0] == "wrong -> correct"
    assert any(line.startswith(f"  PSI {a} -> {b}: output length ") for line in text)


def test_markdown_comment_structure(released, runner):
    a, b = f"sentiment@{V2}", f"sentiment@{V3}"
    old, new = outputs_at(released, a), outputs_at(released, b)
    broken = [i for i in new if old[i]["correct"] is True and new[i]["correct"] is False]
    result = diff(runner, a, b, "--md")
    assert result.exit_code == 0, result.stderr
    md = result.stdout
    lines = md.splitlines()
    assert lines[0] == ci.COMMENT_MARKER
    assert lines[1] == f"### git-model diff: `{a}` → `{b}`"
    assert lines[3].startswith("❌ **10 regressions** beyond the gate's tolerances: `accuracy`, ")
    assert "`label_psi`" in lines[3] and "`output_psi.confidence`" in lines[3] and "confidence.mean" not in lines[3]
    assert f"#### sentiment on sentiment — `{METRICS}`" in lines
    assert f"| metric | `{a}` | `{b}` | change |  |" in lines
    assert "| `accuracy` | 0.925 | 0.84 | -0.085 | 🔴 worse |" in lines
    summary = next(line for line in lines if line.startswith("<details><summary>"))
    assert summary == (f"<details><summary>Examples of sentiment on sentiment: 0 wrong → correct, {len(broken)} "
                       f"correct → wrong, {len(broken)} label changes, 0 changed generations</summary>")
    assert lines.index("</details>") > lines.index(summary)
    assert f"**Correct → wrong ({len(broken)})**" in lines
    assert f"| id | input | expected | `{a}` | `{b}` |" in lines
    row = next(line for line in lines if line.startswith(f"| `{broken[0]}` |"))
    assert row.endswith(f"| negative | ✓ negative ({old[broken[0]]['confidence']:.2f}".rstrip("0") + ") | "
                        f"✗ positive ({new[broken[0]]['confidence']:.2f}".rstrip("0") + ") |")
    assert lines[-1] == f"<sub>`git model diff {a} {b} --md`</sub>"

    better = diff(runner, f"sentiment@{V1}", f"sentiment@{V2}", "--md").stdout.splitlines()
    # every quality metric is better; only a timing may be worse, by scheduler noise, and then it is named
    assert better[3] == "✅ **No regressions**: no gated metric is worse (params.yaml `gate:`)" or (
        better[3].startswith("☑️ **Within tolerance**: ") and "accuracy" not in better[3])


def test_markdown_says_within_tolerance_when_rows_are_worse_but_pass(released, runner):
    """Rows marked worse that the gate's tolerances let through: the verdict is "within tolerance",
    never a ✅ "No regressions"."""
    set_gate(released, {"tolerance": {"accuracy*": 0.1, "labels.*": 0.2, "label_psi": 0.1},
                        "psi_alert": 5})
    lines = diff(runner, f"sentiment@{V2}", f"sentiment@{V3}", "--md").stdout.splitlines()
    assert lines[3].startswith("☑️ **Within tolerance**: no metric is worse than the gate's tolerances allow, but ")
    assert "`accuracy`" in lines[3] and "`label_psi`" in lines[3]
    assert not any(line.startswith("✅") or line.startswith("❌") for line in lines)
    assert "| `accuracy` | 0.925 | 0.84 | -0.085 | 🔴 worse |" in lines


def test_git_diff_defaults_and_never_checking_out(released, runner):
    before, head = snapshot_tree(released), git(released, "rev-parse", "HEAD")
    result = diff(runner)
    assert result.exit_code == 0, result.stderr
    assert result.stdout == "No metric changes between HEAD and workspace (1 result compared).\n"
    one = diff(runner, f"sentiment@{V1}")   # one revision: against the workspace
    header = one.stdout.splitlines()[0].split()
    assert header == ["Path", "Metric", f"sentiment@{V1}", "workspace", "Change", "Verdict"]
    assert any(line.split()[1:5] == ["accuracy", "0.635", "0.84", "+0.205"] for line in one.stdout.splitlines())
    plain = diff(runner, "HEAD~2", "HEAD", "--precision", "2")
    assert any(line.split()[1:6] == ["labels.positive.precision", "0.72", "0.75", "+0.03", "better"]
               for line in plain.stdout.splitlines())
    assert snapshot_tree(released) == before and git(released, "rev-parse", "HEAD") == head
    assert git(released, "status", "--porcelain") == ""


@pytest.mark.parametrize("args, stderr", [
    (["nosuch"], "Error: unknown revision 'nosuch'\n"),
    ([f"sentiment@v9.0.0"], f"Error: unknown release sentiment@v9.0.0; releases of sentiment: {V1}, {V2}, {V3}\n"),
    (["sentiment#prod"], "Error: sentiment#prod: no version of 'sentiment' holds stage 'prod'\n"
                         "  hint: promote one with `git model promote sentiment VERSION --stage prod`\n"),
    (["HEAD", "--model", "nosuch"], "Error: unknown model 'nosuch': known: sentiment\n"
                                    "  hint: check the spelling (`git model status` lists the models)\n"),
    (["HEAD", "--model", "sentimnt"], "Error: unknown model 'sentimnt': did you mean 'sentiment'?\n"
                                      "  hint: check the spelling (`git model status` lists the models)\n"),
    (["--", "--upload-pack=x"], "Error: invalid revision '--upload-pack=x': revisions do not start with '-'\n"),
])
def test_unknown_refs(released, runner, args, stderr):
    result = diff(runner, *args)
    assert (result.exit_code, result.stdout, result.stderr) == (3, "", stderr)


def test_ambiguous_ref(released, runner):
    git(released, "branch", "candidate")
    git(released, "tag", "candidate", "HEAD~1")
    result = diff(runner, "candidate")
    assert result.exit_code == 3
    assert result.stderr == ("Error: 'candidate' is both a branch and a tag: git-model does not guess\n"
                             "  hint: say which: refs/heads/candidate or refs/tags/candidate\n")
    assert diff(runner, "refs/tags/candidate").exit_code == 0


# ----------------------------------------------------------------------------- the pull-request workflow


def actionlint(path: Path) -> subprocess.CompletedProcess:
    exe = shutil.which("actionlint", path=str(Path(sys.executable).parent)) or shutil.which("actionlint")
    assert exe, "actionlint is not installed: pip install -e '.[dev]' brings it"
    return subprocess.run([exe, "-no-color", str(path)], capture_output=True, text=True, cwd=path.parent)


def test_init_ci_github_writes_a_workflow_that_passes_actionlint(gm_repo, runner):
    result = runner.invoke(cli, ["init", "--ci", "github"])
    assert result.exit_code == 0, result.stderr
    assert result.stdout.splitlines()[0] == ("Wrote .github/workflows/model-diff.yml (staged): pull requests get a "
                                             "`git model diff` comment")
    path = gm_repo / ci.WORKFLOW_PATH
    assert path.read_text() == ci.github_workflow()
    assert "A  .github/workflows/model-diff.yml" in git(gm_repo, "status", "--porcelain").splitlines()
    lint = actionlint(path)
    assert lint.returncode == 0, lint.stdout + lint.stderr
    text = path.read_text()
    assert "fetch-depth: 0" in text and 'git model diff "origin/$BASE_REF" HEAD --md > comment.md' in text
    assert ci.COMMENT_MARKER in text and "updateComment" in text and "createComment" in text
    # the comment is cut to fit GitHub's limit: the full report goes up as the artifact it points to
    assert "uses: actions/upload-artifact@v4" in text and "name: model-diff-report" in text
    assert 'git model diff "origin/$BASE_REF" HEAD --examples --json > model-diff.json' in text
    # idempotent, and an edited workflow is the user's
    again = runner.invoke(cli, ["init", "--ci", "github", "--json"])
    assert json.loads(again.stdout)["ci"] == {"path": ci.WORKFLOW_PATH, "status": "unchanged"}
    path.write_text(text.replace("3.11", "3.12"))
    kept = runner.invoke(cli, ["init", "--ci", "github"])
    assert kept.stdout.splitlines()[0] == ".github/workflows/model-diff.yml exists with your edits: left as it is"
    assert "3.12" in path.read_text()


def test_init_ci_refuses_a_symlinked_workflows_folder_before_changing_anything(git_repo, runner, tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (git_repo / ".github").mkdir()
    (git_repo / ".github" / "workflows").symlink_to(outside)
    result = runner.invoke(cli, ["init", "--ci", "github"])
    assert result.exit_code == 3
    assert result.stderr.startswith("Error: .github/workflows is a symlink: git-model writes only real files")
    assert not (git_repo / "dvc.yaml").exists() and not list(outside.iterdir())


def test_the_projects_own_workflow_is_the_shipped_one_and_passes_actionlint():
    own = ROOT / ci.WORKFLOW_PATH
    assert own.read_text() == ci.github_workflow(own_project=True)
    lint = actionlint(own)
    assert lint.returncode == 0, lint.stdout + lint.stderr
    text = own.read_text()
    assert "run: pip install ." in text and "run: dvc repro\n" in text


def commit_new_checkpoint_without_evaluating(repo: Path, runner, demo_dir: Path) -> tuple[str, str]:
    """Change the checkpoint, `git model add`, commit without re-evaluating: HEAD's metrics are v3's,
    its checkpoint v2's. Returns (measured md5, tracked md5)."""
    shutil.copy(demo_dir / "sentiment-v2.gguf", repo / "models" / "sentiment.gguf")
    assert runner.invoke(cli, ["add", "models/sentiment.gguf"]).exit_code == 0
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "new checkpoint, not evaluated")
    measured = json.loads((repo / METRICS).read_text())["model"]["md5"]
    tracked = next(line.split()[-1] for line in (repo / "models/sentiment.gguf.dvc").read_text().splitlines()
                   if "md5:" in line)
    return measured, tracked


def test_stale_metrics_are_named_in_every_format_and_no_green_verdict(released, runner, demo_dir):
    measured, tracked = commit_new_checkpoint_without_evaluating(released, runner, demo_dir)
    reason = (f"{METRICS} at HEAD is stale: it measured model md5 {measured}, but models/sentiment.gguf at HEAD "
              f"is md5 {tracked}")
    md = diff(runner, "HEAD~1", "HEAD", "--md")
    assert md.exit_code == 0, md.stderr
    lines = md.stdout.splitlines()
    assert lines[3] == (f"⚠️ **STALE METRICS** (sentiment on sentiment): {reason}. These numbers do not describe "
                        "the checkpoint: re-evaluate and commit before trusting this diff.")
    assert not any(line.startswith(("✅", "☑️")) for line in lines)
    plain = diff(runner, "HEAD~1", "HEAD")
    assert plain.stdout.splitlines()[0] == f"STALE: {reason}"
    assert f"No metric changes between HEAD~1 and HEAD (1 result compared)." in plain.stdout
    as_json = diff(runner, "HEAD~1", "HEAD", "--json")
    assert json.loads(as_json.stdout) == {}          # still exactly `dvc metrics diff --json`
    assert as_json.stderr == f"Warning: STALE: {reason}\n"
    examples = json.loads(diff(runner, "HEAD~1", "HEAD", "--examples", "--json").stdout)
    assert examples["stale"] == {METRICS: {"new": reason}}
    text = diff(runner, "HEAD~1", "HEAD", "--examples").stdout
    assert text.startswith(f"STALE: {reason}\n")
    # evaluated again: fresh, and the verdict comes back
    assert runner.invoke(cli, ["eval", "sentiment", "--evalset", "sentiment"]).exit_code == 0
    assert "STALE" not in diff(runner, "HEAD~1", "workspace", "--md").stdout


def test_stale_eval_set_is_named_too(released, runner):
    path = released / EVALSET
    path.write_text("".join(line + "\n" for line in path.read_text().splitlines()[::2]))
    assert runner.invoke(cli, ["evalset", "add", EVALSET]).exit_code == 0
    result = diff(runner, "HEAD", "workspace")
    assert result.stdout.splitlines()[0].startswith(f"STALE: {METRICS} at workspace is stale: it measured eval set md5 ")


@pytest.mark.parametrize("args", [[], ["--json"], ["--md"], ["--examples"]])
def test_a_misspelt_evalset_or_model_is_an_error_with_did_you_mean(released, runner, args):
    result = diff(runner, "HEAD~1", "HEAD", "--evalset", "sentimen", *args)
    assert (result.exit_code, result.stdout) == (3, "")
    assert result.stderr == ("Error: unknown eval set 'sentimen': did you mean 'sentiment'?\n"
                             "  hint: check the spelling (the eval sets are evalsets/<name>.jsonl)\n")
    result = diff(runner, "HEAD~1", "HEAD", "--model", "sentimnt", *args)
    assert (result.exit_code, result.stdout) == (3, "")
    assert result.stderr.startswith("Error: unknown model 'sentimnt': did you mean 'sentiment'?\n")


def test_markdown_comment_stays_under_githubs_limit(released, runner):
    """The comment of a huge diff is cut to fit in a GitHub comment (65,536 characters), with a count of
    what was left out and where the full report is."""
    from gitmodel.cli.compare import MD_LIMIT, render_diff_md
    from gitmodel.diffing import diff as core_diff

    result = core_diff(f"sentiment@{V2}", f"sentiment@{V3}", examples=True, verdict=True)
    behaviour = result.files[0].behaviour
    # 10,175 flips, as a 50,000-example eval set gave: each id, its input and answers in the comment
    flips = [f"example-{i:05d}" for i in range(10_175)]
    behaviour["correct_to_wrong"] = flips
    for i in flips:
        behaviour["examples"][i] = {"input": "a review " * 30, "expected": "negative",
                                    "old": {"output": "negative", "label": "negative", "confidence": 0.9,
                                            "correct": True, "tie": False},
                                    "new": {"output": "positive", "label": "positive", "confidence": 0.8,
                                            "correct": False, "tie": False}}
    text = render_diff_md(result, show_all=True, precision=5)
    assert len(text) < MD_LIMIT
    import re

    more = re.search(r"… and (\d+) more \(the full report: `git model diff --examples`; the model-diff workflow "
                     r"uploads it as the `model-diff-report` artifact\)", text)
    shown = sum(1 for line in text.splitlines() if line.startswith("| `example-"))
    assert more and shown + int(more.group(1)) == 10_175
    assert "example-09999" not in text
    # however many results: the tail is cut at a line, counted, and the report pointed to
    result.files = result.files * 300
    text = render_diff_md(result, show_all=True, precision=5)
    assert len(text) < MD_LIMIT
    assert re.search(r"✂️ \*\*Truncated\*\*: \d+ more lines \(\d+ characters\) do not fit in a comment; the full "
                     r"report: `git model diff --examples`", text.splitlines()[-1])
    assert sum(x.startswith("<details>") for x in text.splitlines()) == text.count("</details>")
