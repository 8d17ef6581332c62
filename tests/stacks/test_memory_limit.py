"""The stack checks `memoryLimit` with the service's own memory arithmetic (service/memory.py,
docs/memory.md): too small a limit for the model, batches, decoding, connections and a few maximal bodies
is a ConfigError naming the key and the minimum, before any resource is declared."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from service import memory
from service.settings import Settings
from stacks.config import ConfigError
from stacks.config import workload as w
from stacks.config.quantities import memory_bytes
from tests.stacks.test_stack_config import load

ROOT = Path(__file__).resolve().parents[2]


def test_the_stacks_copies_of_service_defaults_are_the_services():
    # the pod runs the service with these defaults (stacks/pod_spec.py does not set them)
    fields = Settings.model_fields
    assert fields["max_body_bytes"].default == w.SERVICE_MAX_BODY_BYTES
    assert fields["max_image_pixels"].default == w.SERVICE_MAX_IMAGE_PIXELS
    assert fields["max_connections"].default == w.SERVICE_MAX_CONNECTIONS
    assert fields["crop_size"].default == w.SERVICE_CROP_SIZE


@pytest.mark.parametrize(("cpu", "decode"), [("500m", 1), ("1", 1), ("1500m", 1), ("2", 2), ("8", 4)])
def test_minimum_counts_the_decode_threads_the_service_defaults_to(cpu, decode):
    expected = memory.minimum_limit(footprint=w.MODEL_FOOTPRINT_BYTES, max_batch_size=8, crop_size=224,
                                    max_queue=256, decode_threads=decode, max_image_pixels=50_000_000,
                                    max_connections=512, max_body_bytes=20 * 2**20)
    assert w.minimum_memory_limit(cpu, 8, 256) == expected


def test_the_minimum_is_where_the_services_plan_becomes_sufficient():
    settings = Settings(max_batch_size=16, max_queue=256, decode_threads=2)
    minimum = w.minimum_memory_limit("2", 16, 256)

    def sufficient(limit: int) -> bool:
        return memory.plan(settings, 224, 16, w.MODEL_FOOTPRINT_BYTES,
                           limit=memory.MemoryLimit(limit, "test")).sufficient

    assert sufficient(minimum) and not sufficient(minimum - 2**20)


def test_too_small_a_memory_limit_names_the_key_and_the_minimum():
    minimum_mib = -(-w.minimum_memory_limit("1", 8, 256) // 2**20)
    with pytest.raises(ConfigError) as error:
        load(cpuRequest="1", cpuLimit="1", memoryRequest="1Gi", memoryLimit="1536Mi", maxBatchSize="8",
             maxQueue="256")
    message = str(error.value)
    assert message.startswith("aks-image-classifier:memoryLimit (1536Mi) must be >= ")
    assert f">= {minimum_mib}Mi" in message and "docs/memory.md" in message
    load(cpuRequest="1", cpuLimit="1", memoryRequest="1Gi", memoryLimit=f"{minimum_mib}Mi", maxBatchSize="8",
         maxQueue="256")  # enough
    with pytest.raises(ConfigError, match=r"memoryLimit \(2Gi\)"):  # a bigger batch needs more
        load(cpuRequest="2", cpuLimit="2", memoryLimit="2Gi", maxBatchSize="64")


@pytest.mark.parametrize("stack", ["dev", "prod", "local"])
def test_every_shipped_stack_leaves_room_for_a_few_maximal_bodies(stack):
    project = yaml.safe_load((ROOT / "Pulumi.yaml").read_text())["config"]
    values = {k: v["default"] for k, v in project.items() if "default" in v}
    values |= {k.split(":")[-1]: v for k, v in
               yaml.safe_load((ROOT / f"Pulumi.{stack}.yaml").read_text())["config"].items()}
    minimum = w.minimum_memory_limit(str(values["cpuLimit"]), values["maxBatchSize"], values["maxQueue"])
    assert memory_bytes(values["memoryLimit"]) >= minimum, (values["memoryLimit"], minimum / 2**20)


def test_the_program_imports_no_service_dependency():
    # `pulumi up` installs requirements.txt only: service.memory must stay standard-library Python
    code = ("import sys, stacks.config; "
            "print(sorted(m for m in ('torch', 'pydantic', 'pydantic_settings', 'uvicorn', 'fastapi') "
            "if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and done.stdout.strip() == "[]", done.stderr


def test_docs_quote_the_stacks_minimum_and_footprint():
    text = (ROOT / "docs/memory.md").read_text()
    minimum_mib = -(-w.minimum_memory_limit("1", 8, 256) // 2**20)
    assert f"`aks-image-classifier:memoryLimit (1536Mi) must be >= {minimum_mib}Mi: ...`" in text
    assert f"footprint of {w.MODEL_FOOTPRINT_BYTES // 2**20} MiB" in text
    assert f"`MIN_BODIES = {memory.MIN_BODIES}`" in text
