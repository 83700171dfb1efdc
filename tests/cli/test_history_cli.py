"""release, log, show and plot through the CLI: exit codes, exact output and messages."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest

from gitmodel.cli import cli
from tests.conftest import RELEASES, git


def gm(runner, *args: str):
    return runner.invoke(cli, list(args), prog_name="git model")


def local(repo, tag: str) -> str:
    when = int(git(repo, "for-each-ref", f"refs/tags/{tag}", "--format=%(creatordate:unix)"))
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(when))


def short(repo, rev: str) -> str:
    return git(repo, "rev-parse", f"{rev}^{{commit}}").strip()[:7]


def accuracy(repo, tag: str) -> float:
    return json.loads(git(repo, "show", f"{tag}:metrics/sentiment/sentiment.json"))["metrics"]["accuracy"]


def test_release_output(released, runner):
    (released / "NOTES.md").write_text("x\n")
    git(released, "add", "NOTES.md")
    git(released, "commit", "-q", "-m", "notes")
    result = gm(runner, "release", "sentiment", "v2.0.0", "-m", "notes")
    assert result.exit_code == 0, result.stderr
    md5 = json.loads((released / "metrics/sentiment/sentiment.json").read_text())["model"]["md5"]
    assert result.stdout == (
        f"Released sentiment@v2.0.0 on {short(released, 'HEAD')} (models/sentiment.gguf md5 {md5})\n"
        f"  sentiment: n 400  accuracy {accuracy(released, 'HEAD'):.4f}\n"
        "Note: no DVC remote is configured: this registry's weights live on this machine only (`dvc remote add "
        "-d storage URL`, then `git model push`). Share the tag with: git push origin sentiment@v2.0.0\n")
    assert result.stderr == ""


def test_release_json(released, runner):
    (released / "NOTES.md").write_text("x\n")
    git(released, "add", "NOTES.md")
    git(released, "commit", "-q", "-m", "notes")
    data = json.loads(gm(runner, "release", "sentiment", "2.0.0", "--json").stdout)
    assert data["tag"] == "sentiment@v2.0.0" and data["version"] == "v2.0.0"
    assert data["record"]["evalsets"]["sentiment"]["metrics"]["n"] == 400


def test_release_refusal_is_one_error_exit_3(released, runner):
    result = gm(runner, "release", "sentiment", "v1.10.0")
    assert result.exit_code == 3
    assert result.stderr == (f"Error: tag sentiment@v1.10.0 already exists on commit {short(released, 'HEAD')}: "
                             "a release is immutable\n  hint: release the next version instead, e.g. v1.10.1\n")
    assert result.stdout == ""


@pytest.mark.parametrize("argv, phrase", [
    (["release"], "Error: Missing argument 'MODEL'."),
    (["release", "sentiment"], "Error: Missing argument 'VERSION'."),
    (["log", "-n", "0"], "Error: Invalid value for '-n' / '--max-count': 0 is not in the range x>=1."),
    (["show"], "Error: Missing argument 'REF'."),
    (["plot"], "Error: Missing argument 'MODEL'."),
])
def test_usage_errors_exit_2(released, runner, argv, phrase):
    result = gm(runner, *argv)
    assert result.exit_code == 2
    assert phrase in result.stderr


def test_log_table(released, runner):
    git(released, "tag", "-a", "sentiment#prod#1", "-m", "Assigning stage prod to artifact sentiment version v1.2.0",
        "sentiment@v1.2.0^{commit}")
    result = gm(runner, "log", "sentiment")
    assert result.exit_code == 0, result.stderr
    rows = [[v, local(released, f"sentiment@{v}"), short(released, f"sentiment@{v}"),
             "prod" if v == "v1.2.0" else "-", f"{accuracy(released, f'sentiment@{v}'):.4f}"] for v in RELEASES[::-1]]
    header = ["VERSION", "DATE", "COMMIT", "STAGES", "sentiment:accuracy"]
    # tabulate's plain format: a column as wide as its widest cell, its header's plus two at least
    widths = [max([len(header[i]) + 2] + [len(r[i]) for r in rows]) for i in range(5)]
    expected = ["sentiment: 3 releases"] + ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip()
                                             for r in [header, *rows]]
    assert result.stdout.splitlines() == expected


def test_log_marks_deregistered_and_deprecated_and_never_cuts_a_version(released, runner):
    git(released, "tag", "-a", "sentiment@v1.10.100", "-m", "Registering artifact sentiment version v1.10.100", "HEAD")
    git(released, "tag", "-a", "sentiment@v1.0.0!#1", "-m", "Deregistering", "sentiment@v1.0.0^{commit}")
    # deprecated while the deprecation is the newest event (GTO's rule: a same-second tie does not deprecate)
    subprocess.run(["git", "tag", "-a", "sentiment@deprecated#2", "-m", "Deprecating", "HEAD"], cwd=released,
                   check=True, env={**os.environ, "GIT_COMMITTER_DATE": f"{int(time.time()) + 5} +0000"})
    lines = gm(runner, "log").stdout.splitlines()
    assert lines[0] == "sentiment (deprecated): 4 releases"
    assert lines[1].split() == ["VERSION", "DATE", "COMMIT", "STAGES", "sentiment:accuracy", "NOTE"]
    assert [line.split()[0] for line in lines[2:]] == ["v1.10.100", "v1.10.0", "v1.2.0", "v1.0.0"]
    assert lines[-1].endswith("deregistered") and not lines[2].endswith("deregistered")


def test_log_limit_and_json(released, runner):
    result = gm(runner, "log", "sentiment", "-n", "1")
    assert result.stdout.splitlines()[0] == "sentiment: 3 releases, showing the newest 1"
    assert len(result.stdout.splitlines()) == 3
    data = json.loads(gm(runner, "log", "--json", "-n", "2").stdout)
    assert [d["version"] for d in data] == ["v1.10.0", "v1.2.0"]
    assert data[0]["metrics"]["sentiment"]["accuracy"] == accuracy(released, "sentiment@v1.10.0")


def test_log_without_releases(registry, runner):
    result = gm(runner, "log")
    assert result.exit_code == 0
    assert result.stdout == "No releases yet. Release one with `git model release MODEL v1.0.0`.\n"
    result = gm(runner, "log", "sentiment-v1")
    assert result.stdout == ("No releases of sentiment-v1 yet. "
                             "Release one with `git model release sentiment-v1 v1.0.0`.\n")
    assert gm(runner, "log", "--json").stdout == "[]\n"


def test_log_unknown_model(released, runner):
    result = gm(runner, "log", "sentimnt")
    assert result.exit_code == 3
    assert result.stderr == ("Error: unknown model 'sentimnt': no release, artifact, checkpoint or metrics by that "
                             "name\n  hint: did you mean 'sentiment'?\n")


def test_show_text(released, runner):
    result = gm(runner, "show", "sentiment@v1.2.0")
    assert result.exit_code == 0, result.stderr
    lines = result.stdout.splitlines()
    md5 = json.loads(git(released, "show", "sentiment@v1.2.0:metrics/sentiment/sentiment.json"))["model"]["md5"]
    assert lines[:5] == [f"sentiment@v1.2.0 (commit {short(released, 'sentiment@v1.2.0')})", "",
                         "sentiment  sentiment@v1.2.0",
                         f"  released:  {local(released, 'sentiment@v1.2.0')} by Test <t@example.com>",
                         "    demo v2 weights"]
    assert f"  model:     models/sentiment.gguf md5 {md5}, 547,776 bytes (tracked by models/sentiment.gguf.dvc)" in lines
    assert "  params:    epochs=2" in lines and "  base:      demo-base" in lines and "  trained:   7200 s" in lines
    metrics = lines[lines.index(next(x for x in lines if x.startswith("  metrics on sentiment"))) + 1:]
    assert f"    accuracy{' ' * (max(len(x.split()[0]) for x in metrics) - 6)}" \
           f"{accuracy(released, 'sentiment@v1.2.0'):.4f}" in metrics   # one column of values


def test_show_json(released, runner):
    data = json.loads(gm(runner, "show", "sentiment@latest", "--json").stdout)
    assert data["revision"] == "sentiment@latest" and data["workspace"] is False
    [model] = data["models"]
    assert model["release"]["version"] == "v1.10.0"
    assert model["results"]["sentiment"]["metrics"]["accuracy"] == accuracy(released, "sentiment@v1.10.0")


def test_show_unknown_ref(released, runner):
    result = gm(runner, "show", "sentiment@v9.9.9")
    assert result.exit_code == 3
    assert result.stderr == ("Error: unknown release sentiment@v9.9.9; releases of sentiment: "
                             "v1.0.0, v1.2.0, v1.10.0\n")


def test_plot_without_vl_convert(released, runner, monkeypatch):
    monkeypatch.setitem(sys.modules, "vl_convert", None)
    result = gm(runner, "plot", "sentiment", "-o", "x.png")
    assert result.exit_code == 3
    assert result.stderr == ("Error: writing x.png needs vl-convert-python (it renders Vega-Lite offline, without "
                             "a browser), which is not installed\n"
                             "  hint: pip install 'git-model[plot]'; or write the Vega-Lite spec with -o x.json\n")


def test_log_in_a_real_process_imports_nothing_heavy(released):
    probe = ("import sys\nfrom gitmodel.cli import cli\n"
             "try: cli.main(['log', 'sentiment'], prog_name='git model')\n"
             "except SystemExit as e: assert e.code in (0, None), e.code\n"
             "heavy = sorted(m for m in sys.modules if m.split('.')[0] in "
             "('dvc', 'jsonschema', 'numpy', 'git', 'ruamel', 'tabulate', 'llama_cpp'))\n"
             "print('HEAVY', heavy)")
    proc = subprocess.run([sys.executable, "-c", probe], cwd=released, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines()[-1] == "HEAVY []"
    proc = subprocess.run(["git", "model", "log"], cwd=released, capture_output=True, text=True)
    assert proc.returncode == 0 and proc.stdout.startswith("sentiment: 3 releases\n")
