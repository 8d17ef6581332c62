"""The README and the deploy docs say what the code does, by name: every figure or name below is derived
from the code or the stack files at test time and compared with the exact text the docs show, so a doc that
drifts from the code fails here.

- quota: the VM family quota names and vCPUs follow from the VM sizes in `Pulumi.<stack>.yaml` (Azure
  names a size `Standard_<family letter><vCPUs><features>_v<version>`, Microsoft Learn "Azure virtual machine
  sizes naming conventions"; its quota is "Standard <family> Family vCPUs", spelled as `az vm list-usage`
  prints it: features upper-case up to v5, as named from v6 on, e.g. Standard_D4ds_v5 -> Standard DDSv5
  Family vCPUs, Standard_D4ds_v6 -> Standard Ddsv6 Family vCPUs).
- resource providers: the namespaces of every ARM type the program declares (the ARM export of dev and prod).
- the cost estimate: recomputed from the price table and the stack files.
- configuration defaults: every default a docs table shows for a `Pulumi.yaml` key is that key's default.
- the policy pack's virtualenv: the one `policy/PulumiPolicy.yaml` names.
The checkov counts are checked next to the checkov run itself (tests/stacks/test_arm.py).
"""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path

import pytest
import yaml

from tests.harness.stack_mocks import run_program, stack_file_config
from tools import render_arm
from tools.serving_cost import vm_prices

ROOT = Path(__file__).resolve().parents[1]
P = "aks-image-classifier:"
README = (ROOT / "README.md").read_text()
DEPLOY = (ROOT / "docs" / "deploy.md").read_text()
MAX_README_LINES = 400
_SIZE = re.compile(r"^Standard_([A-Z])(\d+)([a-z]*)_v(\d+)$")


def flat(text: str) -> str:
    """Whitespace-normalised text (a phrase may wrap across lines)."""
    return " ".join(text.split())


def vm_size(size: str) -> tuple[int, str]:
    """(vCPUs, quota family) of a VM size name: Standard_D4ds_v5 -> (4, "Standard DDSv5 Family vCPUs"),
    Standard_D4ds_v6 -> (4, "Standard Ddsv6 Family vCPUs")."""
    match = _SIZE.match(size)
    assert match, f"not a VM size this test can name: {size}"
    letter, vcpus, features, version = match.groups()
    spelled = features.upper() if int(version) <= 5 else features
    return int(vcpus), f"Standard {letter}{spelled}v{version} Family vCPUs"


def stack_sizes(stack: str) -> tuple[dict[str, str], list[str]]:
    config = stack_file_config(stack, ROOT)
    return config, [config[P + "systemNodeVmSize"], config[P + "nodeVmSize"]]


def test_readme_is_at_most_400_lines():
    assert len(README.splitlines()) <= MAX_README_LINES


def test_quota_family_is_the_one_the_stack_sizes_count_against():
    families = {vm_size(size)[1] for stack in ("dev", "prod") for size in stack_sizes(stack)[1]}
    for name, text in (("README.md", README), ("docs/deploy.md", DEPLOY)):
        named = set(re.findall(r"Standard [A-Z][A-Za-z]*v\d+ Family vCPUs", flat(text)))
        assert named == families, f"{name} names {named}, the stack sizes count against {families}"


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_quota_rows_follow_from_the_stack_file(stack):
    """Per pool: nodes × vCPUs of its size (the system pool's family, then the workload pool's at the
    autoscaler's minimum and maximum); in total: their sum at minimum and maximum scale. The README repeats
    the totals."""
    config, (system_size, node_size) = stack_sizes(stack)
    system = int(config[P + "systemNodeCount"])
    low, high = int(config[P + "nodeMinCount"]), int(config[P + "nodeMaxCount"])
    system_vcpus = system * vm_size(system_size)[0]
    per_node = vm_size(node_size)[0]
    expected = (system_vcpus + low * per_node, system_vcpus + high * per_node)
    row = (
        f"| {stack} | {system} × {system_size} = {system_vcpus} "
        f"| {low}-{high} × {node_size} = {low * per_node}-{high * per_node} | {expected[0]} | {expected[1]} |"
    )
    assert row in DEPLOY.splitlines()
    assert f"**{stack} {expected[0]} vCPUs at minimum scale, {expected[1]} at maximum**" in flat(README)


def test_quota_table_names_each_pools_family():
    """The quota table's pool columns name the family each pool's sizes count against (both stacks agree)."""
    header = next(line for line in DEPLOY.splitlines() if line.startswith("| stack | system pool"))
    for index in (0, 1):
        (family,) = {vm_size(stack_sizes(stack)[1][index])[1] for stack in ("dev", "prod")}
        short = family.removeprefix("Standard ").removesuffix(" Family vCPUs")
        assert f"({short} vCPUs)" in header.split(" | ")[1 + index], (header, family)


def test_deploy_doc_gives_the_vcpus_of_exactly_the_sizes_used():
    sizes = sorted(
        {s for stack in ("dev", "prod") for s in stack_sizes(stack)[1]}, key=lambda s: (vm_size(s)[0], s)
    )
    listed = ", ".join(f"{size} {vm_size(size)[0]}" for size in sizes)
    assert listed in flat(DEPLOY)


@cache
def arm_namespaces() -> list[str]:
    """Resource provider namespaces of every ARM type dev and prod declare, less the two every subscription
    has registered (Microsoft.Resources, Microsoft.Authorization: Azure "Resource providers and types")."""
    types = set()
    for stack in ("dev", "prod"):
        template = render_arm.template(run_program(stack_file_config(stack, ROOT), stack))
        types |= {resource["type"] for resource in template["resources"]}
    namespaces = {t.split("/")[0] for t in types} - {"Microsoft.Resources", "Microsoft.Authorization"}
    return sorted(namespaces)


def test_readme_registers_exactly_the_providers_the_program_uses():
    loop = re.search(r"^\s*for ns in ([^;]+); do$", README, flags=re.M)
    assert loop, "README: the `for ns in ...; do az provider register` loop"
    assert loop.group(1).split() == arm_namespaces()


def _prices() -> dict[str, float]:
    """Unit prices from the docs/deploy.md price table: VM sizes per hour (the rows `tools.serving_cost`
    reads too), and the other rows' figures."""
    table = DEPLOY[DEPLOY.index("<!-- price-table") :]
    prices = vm_prices(DEPLOY)

    def figure(pattern: str) -> float:
        match = re.search(pattern, table)
        assert match, pattern
        return float(match.group(1))

    prices["Standard tier"] = figure(r"Standard: \$([\d.]+) per cluster-hour")
    prices["Basic"] = figure(r"Basic \$([\d.]+) per day")
    prices["Standard"] = figure(r"Standard \$([\d.]+) per day")
    prices["Premium"] = figure(r"Premium \$([\d.]+) per day")
    lb, ip = re.search(r"\| \$([\d.]+) \+ \$([\d.]+) per hour \|", table).groups()
    prices["LB + IP"] = float(lb) + float(ip)
    return prices


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_cost_estimate_follows_from_prices_and_stack_file(stack):
    """730 hours a month, a registry day-price × 365 / 12; rounded to whole dollars as the table shows
    them."""
    hours, prices = 730, _prices()
    config, (system_size, node_size) = stack_sizes(stack)
    system = int(config[P + "systemNodeCount"]) * prices[system_size]
    compute = [
        (system + int(config[P + n]) * prices[node_size]) * hours for n in ("nodeMinCount", "nodeMaxCount")
    ]
    fixed = {
        "Standard tier": prices["Standard tier"] * hours if config.get(P + "clusterTier") == "Standard" else 0
    }
    fixed["ACR"] = prices[config[P + "registrySku"]] * 365 / 12
    fixed["LB + IP"] = prices["LB + IP"] * hours
    parts = ", ".join(f"{name} ${round(value):,}" for name, value in fixed.items() if value)
    low, high = (round(c + sum(fixed.values())) for c in compute)
    row = (
        f"| {stack} | ≈ ${low:,} (compute ${round(compute[0]):,}, {parts}) "
        f"| ≈ ${high:,} (compute ${round(compute[1]):,}) |"
    )
    assert row in DEPLOY.splitlines()


def _project_defaults() -> dict[str, object]:
    config = yaml.safe_load((ROOT / "Pulumi.yaml").read_text())["config"]
    return {key: spec.get("default") for key, spec in config.items() if isinstance(spec, dict)}


#: How the docs write a default that is empty in Pulumi.yaml ("", [] or none).
_EMPTY = re.compile(r"^(?:(?:unset|generated|current|none)\b|—|`\"\"`|`\[\]`)")


def _shown(default: object) -> str:
    if isinstance(default, bool):
        return str(default).lower()
    if isinstance(default, list):
        return yaml.safe_dump(default, default_flow_style=True).strip()
    return str(default)


def _config_rows(text: str) -> list[tuple[list[str], list[str]]]:
    """(keys, defaults) of every table row whose first cell is `key` or `key` / `key` ...."""
    rows = []
    for line in text.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split(" | ")]
        if len(cells) < 3 or not re.fullmatch(r"`[A-Za-z:-]+`( / `[A-Za-z:-]+`)*", cells[0]):
            continue
        keys = re.findall(r"`([A-Za-z:-]+)`", cells[0])
        defaults = cells[1].split(" / ") if len(keys) > 1 else [cells[1]]
        rows.append((keys, defaults))
    return rows


@pytest.mark.parametrize("doc", ["README.md", "docs/configuration.md"])
def test_documented_defaults_are_the_project_defaults(doc):
    defaults = _project_defaults()
    rows = [(k, d) for k, d in _config_rows((ROOT / doc).read_text()) if k[0] in defaults]
    assert len(rows) >= 10, f"{doc}: the stack configuration table"
    for keys, shown in rows:
        assert len(keys) == len(shown), f"{doc}: {keys} vs {shown}"
        for key, cell in zip(keys, shown, strict=True):
            default = defaults[key]
            if cell.startswith("= `"):  # derived from another key, e.g. replicas "= `minReplicas`"
                assert cell[3:].split("`")[0] in defaults, (doc, key, cell)
                continue
            if default in ("", [], None):
                assert _EMPTY.match(cell), f"{doc}: `{key}` has no default, the table shows {cell!r}"
                continue
            value = re.match(r"`([^`]*)`", cell)
            assert (value.group(1) if value else cell.split()[0]) == _shown(default), (
                doc,
                key,
                cell,
                default,
            )


def test_policy_pack_virtualenv_is_the_one_the_pack_declares():
    runtime = yaml.safe_load((ROOT / "policy" / "PulumiPolicy.yaml").read_text())["runtime"]
    venv = f"policy/{runtime['options']['virtualenv']}"
    assert f"the policy pack's own virtualenv, {venv}" in README
    workflow = (ROOT / ".github" / "workflows" / "deploy.yml").read_text().splitlines()
    installs = [line.strip() for line in workflow if "policy/requirements.txt" in line]
    assert installs, "deploy.yml installs the policy pack's requirements"
    for line in installs:
        assert line.startswith(f"{venv}/bin/pip install"), f"deploy.yml: {line} (not into {venv})"


def test_kubelogin_modes_the_docs_name_are_the_ones_the_stacks_and_ci_use():
    """The pipeline's stacks sign in with the mode their stack files set, deploy.yml gives kubelogin that mode
    (`AAD_LOGIN_METHOD`), and the README and docs/delivery.md name it; the README also names the default a
    personal stack gets (Pulumi.yaml)."""
    default = _project_defaults()["kubeloginMode"]
    modes = {stack_file_config(stack, ROOT).get(P + "kubeloginMode") or default for stack in ("dev", "prod")}
    assert len(modes) == 1, modes
    (ci_mode,) = modes
    workflow = yaml.safe_load((ROOT / ".github" / "workflows" / "deploy.yml").read_text())
    assert workflow["env"]["AAD_LOGIN_METHOD"] == ci_mode
    delivery = flat((ROOT / "docs" / "delivery.md").read_text())
    for name, text in (("README.md", flat(README)), ("docs/delivery.md", delivery)):
        assert f"`kubeloginMode: {ci_mode}`" in text, name
    assert f"`kubeloginMode`: `{default}` by default" in flat(README)
