"""service/Dockerfile: hadolint and checkov (dockerfile framework) report nothing; the key facts hold; the
build stage's compile step, run as its RUN line runs it, makes an archive the image's `python -m service`
serves as it is (no Docker engine here: the RUN and ENV lines are read from the file and run with `sh`)."""

from __future__ import annotations

import http.client
import json
import os
import re
import shlex
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.azurite import free_port
from tests.service.serving import wait_ready
from tests.service.tiny import LABELS, save_tiny_torchscript

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "service" / "Dockerfile"
HADOLINT = Path(sys.executable).parent / "hadolint"
#: The service's defaults for what tests/service/conftest.py sets for the other tests of the session.
UNSET = {"MODEL_RUNTIME": "auto", "MODEL_DTYPE": "auto"}


def test_hadolint_reports_nothing():
    if not HADOLINT.exists():
        pytest.fail(f"hadolint not installed at {HADOLINT} (make install)")
    result = subprocess.run([str(HADOLINT), "--format", "json", str(DOCKERFILE)], capture_output=True,
                            text=True, timeout=120)
    findings = json.loads(result.stdout or "[]")
    assert findings == [], findings
    assert result.returncode == 0, result.stderr


def test_checkov_dockerfile_checks_pass(checkov):
    # checkov ran once over the manifests and the Dockerfile, in folder docker/ (tests/conftest.py)
    failed = [c["check_id"] for c in checkov.results("docker", "failed_checks")]
    assert failed == []
    assert len(checkov.results("docker", "passed_checks")) > 10  # the checks really ran


def test_dockerfile_essentials():
    text = DOCKERFILE.read_text()
    stages = re.findall(r"^FROM (\S+) AS (\S+)", text, flags=re.M)
    assert stages == [("python:3.11-slim-bookworm", "build"), ("python:3.11-slim-bookworm", "runtime"),
                      ("runtime", "serve-false"), ("runtime", "serve-true")]  # multi-stage
    assert re.findall(r"^FROM (\S+)$", text, flags=re.M) == ["serve-${COMPILE_MODEL}"]  # the build arg picks
    assert re.search(r"\AARG COMPILE_MODEL=true$", _instructions(text)[0])
    assert "--index-url https://download.pytorch.org/whl/cpu" in text  # CPU-only wheels
    assert re.search(r"^USER 10001", text, flags=re.M)  # non-root
    assert "python -m service --prefetch" in text  # weights baked in by the service's own loader
    for arg in ("MODEL_ARCH", "MODEL_WEIGHTS", "MODEL_FILE"):
        assert f"ARG {arg}" in text
    assert re.search(r"^HEALTHCHECK .*\n.*service.healthcheck", text, flags=re.M)
    assert "EXPOSE 8080" in text
    # Every file the image copies exists in the build context (service/).
    for source in re.findall(r"^COPY (?!--from)(\S+)", text, flags=re.M):
        matches = list((DOCKERFILE.parent).glob(source.rstrip("/")))
        assert matches, source
    assert (DOCKERFILE.parent / ".dockerignore").exists()


def _instructions(text: str) -> list[str]:
    """The Dockerfile's instructions, continuation lines joined, comments and blank lines dropped."""
    joined = re.sub(r"\\\n", " ", "\n".join(line for line in text.splitlines()
                                           if not line.lstrip().startswith("#")))
    return [line.strip() for line in joined.splitlines() if line.strip()]


def _stages() -> dict[str, list[str]]:
    """Stage name -> its instructions after FROM; ``""`` holds those before the first FROM."""
    stages: dict[str, list[str]] = {"": []}
    current = ""
    for line in _instructions(DOCKERFILE.read_text()):
        if line.startswith("FROM "):
            words = line.split()
            current = words[3] if len(words) > 3 else "final"
            stages[current] = []
        else:
            stages[current].append(line)
    return stages


def _args(*stages: list[str]) -> dict[str, str]:
    """``ARG NAME=default`` values of these stages' instructions (later ones win)."""
    found = {}
    for instructions in stages:
        for line in instructions:
            if line.startswith("ARG ") and "=" in line:
                name, _, value = line[4:].partition("=")
                found[name] = shlex.split(value)[0] if value else ""
    return found


def _sh(command: str, env: dict[str, str], opt: Path, **kwargs) -> subprocess.CompletedProcess:
    """``command`` as RUN runs it (``/bin/sh -c``), ``/opt/`` moved to ``opt``, ``python`` this venv's."""
    path = f"{Path(sys.executable).parent}:{os.environ['PATH']}"
    return subprocess.run(["sh", "-c", command.replace("/opt/", f"{opt}/")], cwd=ROOT, capture_output=True,
                          text=True, env=os.environ | env | {"PATH": path}, **kwargs)


def _env_values(instructions: list[str], env: dict[str, str], opt: Path) -> dict[str, str]:
    """The ``ENV`` settings of ``instructions``, expanded as Docker expands them (``${A:-b}`` / ``${A:+b}``
    like ``sh``), in order."""
    values: dict[str, str] = {}
    for line in instructions:
        if line.startswith("ENV "):
            for pair in shlex.split(line[4:]):
                name, _, value = pair.partition("=")
                values[name] = _sh(f'printf %s "{value}"', env | values, opt).stdout
    return values


def _compile_step(stages: dict[str, list[str]]) -> str:
    (step,) = [line[4:] for line in stages["build"] if line.startswith("RUN ") and "--compile" in line]
    return step


@pytest.fixture
def model_store(tmp_path) -> Path:
    """``<tmp>/opt/model-store/`` with a tiny TorchScript model and its labels (the baked files)."""
    store = tmp_path / "opt" / "model-store"
    store.mkdir(parents=True)
    save_tiny_torchscript(store / "tiny.pt")
    (store / "labels.txt").write_text("".join(f"{label}\n" for label in LABELS))
    return store


def _get(port: int, path: str) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def _serve_until_ready(env: dict[str, str], port: int) -> tuple[str, int, bytes]:
    """Start ``python -m service`` with ``env``; once ``/readyz`` is 200 read the model's V2 metadata, stop
    it with SIGTERM; return its log, exit status and the metadata."""
    process = subprocess.Popen([sys.executable, "-m", "service"], cwd=ROOT, env=os.environ | env,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        wait_ready(process, port)
        status, metadata = _get(port, "/v2/models/tiny")
    finally:
        process.send_signal(signal.SIGTERM)
        output, _ = process.communicate(timeout=60)
    assert status == 200, metadata
    return output, process.returncode, metadata


def test_the_compiled_model_is_what_the_image_serves_without_calibrating(model_store):
    """The build stage's compile RUN (with the Dockerfile's ARG defaults: COMPILE_MODEL=true, the default
    MODEL_TARGET_CPU) on a baked MODEL_FILE; then the serve-true stage's environment starts the service."""
    stages = _stages()
    opt = model_store.parent
    args = _args(stages[""], stages["build"]) | {"MODEL_FILE": "tiny.pt", "MODEL_LABELS_FILE": "labels.txt"}
    tiny = {"RESIZE_SIZE": "32", "CROP_SIZE": "32", "CALIBRATION_IMAGES": "4", "TORCH_THREADS": "1",
            "LOG_FORMAT": "text"}  # the tiny model's input; a short calibration
    tiny |= UNSET  # the image sets neither
    built = _sh(_compile_step(stages), args | tiny, opt, timeout=300)
    assert built.returncode == 0, built.stderr[-3000:]
    assert f"for a {args['MODEL_TARGET_CPU']} target (MODEL_TARGET_CPU)" in built.stderr
    assert "accuracy gate: " in built.stderr  # the build calibrated and gated
    summary = json.loads(built.stdout[built.stdout.index("{"):])
    image_env = _env_values(stages["runtime"] + stages["serve-true"], args, opt)
    archive = Path(image_env["MODEL_PATH"])
    assert archive == opt / "compiled" / "tiny.pt" and archive.is_file()  # named as the model: name "tiny"
    assert image_env["MODEL_LABELS"] == str(model_store / "labels.txt")
    port = free_port()
    served = {name: image_env[name] for name in ("MODEL_PATH", "MODEL_LABELS", "MODEL_ARCH", "MODEL_WEIGHTS")}
    output, status, metadata = _serve_until_ready(
        served | UNSET | {"TORCH_THREADS": "1", "PORT": str(port), "METRICS_PORT": "0", "HOST": "127.0.0.1",
                  "LOG_FORMAT": "text"}, port)
    assert status == 0, output[-3000:]
    assert "accuracy gate" not in output and "runtime plan" not in output, output[-3000:]
    assert f"OpenVINO archive: {summary['serving']}, gate measured at compile time" in output
    assert json.loads(metadata)["platform"] == "openvino"


@pytest.mark.parametrize(("value", "status"), [("false", 0), ("yes", 1)])
def test_compile_model_false_skips_the_step_and_another_value_fails_it(model_store, value, status):
    stages = _stages()
    args = _args(stages[""], stages["build"]) | {"MODEL_FILE": "tiny.pt", "COMPILE_MODEL": value}
    result = _sh(_compile_step(stages), args, model_store.parent, timeout=60)
    assert result.returncode == status, result.stderr
    assert not (model_store.parent / "compiled").exists()
    if status:
        assert result.stderr.strip() == "COMPILE_MODEL must be true or false, got 'yes'"
    # COMPILE_MODEL=false serves the baked model as before: serve-false sets no MODEL_PATH of its own.
    assert not [line for line in stages["serve-false"] if line.startswith("ENV ")]


def test_the_docs_give_the_dockerfile_target_tier_default():
    from service.hostcpu import TIERS

    default = _args(_stages()["build"])["MODEL_TARGET_CPU"]
    assert default in TIERS
    docs = ROOT / "docs"
    repository = " ".join((docs / "model-repository.md").read_text().split())
    assert f"The Dockerfile's own default, `{default}`" in repository
    performance = " ".join((docs / "performance.md").read_text().split())
    assert f"the image build's default is `{default}`" in performance


def test_every_build_arg_the_stacks_pass_reaches_the_build_stage():
    """Docker passes a `--build-arg` to a stage's RUN only when that stage declares it with `ARG` (a global
    ARG before the first FROM needs redeclaring; BuildKit otherwise warns that the build arg was not
    consumed and the RUN sees nothing). The compile RUN must see what the stacks pass, MODEL_TARGET_CPU from
    the node pool among them."""
    from tests.stacks.conftest import run_stack

    declared = {line[4:].partition("=")[0] for line in _stages()["build"] if line.startswith("ARG ")}
    passed = set()
    for stack in ("dev", "prod", "local", "aca"):
        passed |= set(run_stack(stack).one("docker-build:index:Image").inputs["buildArgs"])
    assert {"MODEL_ARCH", "MODEL_TARGET_CPU"} <= passed
    assert passed <= declared, passed - declared
