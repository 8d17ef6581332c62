"""`.ci/system-packages`: which Debian packages a machine still needs, decided command by command.

Each case runs the real script with a PATH that holds only fake `node` / `npm` / `java` / `chromium` /
`promtool` commands, so the decision is tested for machines this one is not: the bare image of this project's
machines (Node.js 20 with its vendor's npm, OpenJDK 17, no Chromium, no Prometheus), a machine with nothing,
Debian's own Node.js, a broken npm.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / ".ci" / "system-packages"
BASH = shutil.which("bash") or "/bin/bash"

#: What a new machine of this kind ships (field notes, "Measured on this kind of machine"): NodeSource's
#: `nodejs` 20.x, which carries its own npm, and OpenJDK 17; no Chromium and no Prometheus (promtool).
BARE_IMAGE = {"node": "v20.20.2", "npm": "11.19.1", "java": 'openjdk version "17.0.15"'}


def fake_path(tmp_path: Path, tools: dict[str, str | None]) -> Path:
    """A directory of fake commands: each prints its version line, or exits 1 when the value is None."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name, version in tools.items():
        body = f"echo '{version}'" if version is not None else "echo broken >&2; exit 1"
        script = bin_dir / name
        script.write_text(f"#!{BASH}\n{body}\n")
        script.chmod(0o755)
    return bin_dir


def decide(tmp_path: Path, tools: dict[str, str | None]) -> subprocess.CompletedProcess:
    """Run the script with only the fake commands on PATH (and an otherwise empty environment)."""
    path = fake_path(tmp_path, tools)
    return subprocess.run(
        [BASH, str(SCRIPT)], env={"PATH": str(path)}, capture_output=True, text=True, timeout=30
    )


def packages(result: subprocess.CompletedProcess) -> list[str]:
    assert result.returncode == 0, result.stderr
    return result.stdout.split()


#: Commands the other tools give: Chromium, and promtool from Debian's `prometheus`.
OTHERS = {"chromium": "Chromium 156.0.8078.114", "promtool": "promtool, version 2.42.0"}


def test_bare_image_needs_only_chromium_and_prometheus(tmp_path):
    assert packages(decide(tmp_path, BARE_IMAGE)) == ["chromium", "prometheus"]


def test_complete_machine_needs_nothing(tmp_path):
    result = decide(tmp_path, {**BARE_IMAGE, **OTHERS})
    assert packages(result) == []
    assert result.stderr == ""


def test_empty_machine_needs_everything_from_debian(tmp_path):
    everything = ["chromium", "openjdk-17-jre-headless", "prometheus", "nodejs", "npm"]
    assert packages(decide(tmp_path, {})) == everything


def test_missing_java_alone(tmp_path):
    tools = {"node": "v22.11.0", "npm": "10.9.0", **OTHERS}
    assert packages(decide(tmp_path, tools)) == ["openjdk-17-jre-headless"]


def test_debian_node_without_npm_gets_debians_npm(tmp_path):
    """Debian's nodejs (18 on bookworm) does not carry npm; Debian's npm goes with it."""
    tools = {"node": "v18.20.4", "java": "openjdk 17", **OTHERS}
    result = decide(tmp_path, tools)
    assert packages(result) == ["npm"]
    assert "v18.20.4" in result.stderr


@pytest.mark.parametrize("npm", [None, "absent"])
def test_vendor_node_without_working_npm_is_an_error_not_debians_npm(tmp_path, npm):
    """A Node.js >= 20 comes from a vendor; Debian's npm would conflict with it ("held broken packages")."""
    tools = {"node": "v20.20.2", "java": "openjdk 17", **OTHERS}
    if npm is None:
        tools["npm"] = None  # present but failing
    result = decide(tmp_path, tools)
    assert result.returncode == 3
    assert result.stdout.split() == []
    assert "npm from the same vendor" in result.stderr


def test_ci_run_installs_only_what_the_script_prints():
    """`.ci/run` hands apt the script's output and nothing else (no fixed package list left behind)."""
    text = (ROOT / ".ci" / "run").read_text()
    assert "missing=$(.ci/system-packages)" in text
    lines = [line for line in text.splitlines() if not line.strip().startswith("#")]
    install = [line for line in lines if "apt-get install" in line]
    assert install == [
        '  echo "apt-get install ${packages[*]}"',
        '  apt-get install -y -qq --no-install-recommends "${packages[@]}" >/dev/null',
    ]


def _apt_ready() -> str | None:
    """Why apt cannot simulate here, or None."""
    if shutil.which("apt-get") is None or shutil.which("apt-cache") is None:
        return "no apt-get"
    policy = subprocess.run(["apt-cache", "policy", "chromium"], capture_output=True, text=True, timeout=60)
    if "Candidate: (none)" in policy.stdout or "Candidate:" not in policy.stdout:
        return "apt has no package lists (apt-get update)"
    return None


def _simulate(pkgs: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["apt-get", "install", "--simulate", "-qq", "--no-install-recommends", *pkgs],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"},
    )


@pytest.mark.skipif(_apt_ready() is not None, reason=str(_apt_ready()))
def test_apt_resolves_what_the_bare_image_would_request(tmp_path):
    """apt's own resolver, on this machine's real package state, accepts the exact set the script asks for on
    the bare image; and, where Node.js is a vendor's, refuses the old fixed list that asked for Debian's npm
    next to it (the failure this script exists to avoid)."""
    wanted = packages(decide(tmp_path, BARE_IMAGE))
    result = _simulate(wanted)
    assert result.returncode == 0, result.stdout + result.stderr
    version = subprocess.run(
        ["dpkg-query", "-W", "-f=${Version}", "nodejs"], capture_output=True, text=True, timeout=30
    ).stdout
    if "nodesource" in version:
        old = _simulate(["chromium", "openjdk-17-jre-headless", "nodejs", "npm"])
        assert old.returncode != 0
        assert "held broken packages" in old.stdout + old.stderr
