"""Security and delivery properties of .github/workflows, asserted on the parsed files.

Rules modelled: GitHub's "Security hardening for GitHub Actions" (pin actions to a full-length commit SHA;
least-privilege GITHUB_TOKEN permissions; `pull_request_target` runs with the base repository's secrets
and write token, so checking out pull request code under it is unsafe), GitHub's OIDC docs (a job needs
`permissions: id-token: write` to request a token; a job with `environment:` gets the subject
`repo:<owner>/<repo>:environment:<name>`), and azure/login's OIDC mode (client-id, tenant-id,
subscription-id and no client secret).
"""

from __future__ import annotations

import re

import pytest

from tests.workflows.conftest import ROOT, WORKFLOWS, run_text, steps_using
from tests.workflows.expressions import evaluate

SHA_PIN = re.compile(r"^\s*(?:-\s+)?uses:\s*([\w.-]+/[\w./-]+)@([0-9a-f]{40})\s+#\s+v\d+(\.\d+){0,2}\s*$")
AZURE_LOGIN = "azure/login"

#: (event name, ref, extra github.event fields) -> which deploy jobs must run.
EVENTS = {
    "pull request from this repository": ("pull_request", "refs/pull/7/merge", True, {"preview"}),
    "pull request from a fork": ("pull_request", "refs/pull/8/merge", False, set()),
    "push to main": ("push", "refs/heads/main", True, {"up-dev"}),
    "push to another branch": ("push", "refs/heads/feature", True, set()),
    "manual run on main": ("workflow_dispatch", "refs/heads/main", True, {"preview-prod", "up-prod"}),
    "manual run on another branch": ("workflow_dispatch", "refs/heads/feature", True, set()),
}


def jobs(workflows):
    for name, workflow in workflows.items():
        for job_id, job in workflow["jobs"].items():
            yield name, job_id, job


def test_top_level_permissions_are_empty_and_every_job_declares_its_own(workflows):
    for name, workflow in workflows.items():
        assert workflow["permissions"] == {}, name
    for name, job_id, job in jobs(workflows):
        assert isinstance(job.get("permissions"), dict), f"{name}.{job_id} has no permissions block"
        assert job["permissions"].get("contents") == "read", f"{name}.{job_id}"
        assert all(v in ("read", "write", "none") for v in job["permissions"].values())


def test_write_permissions_are_only_where_needed(workflows):
    allowed = {("deploy", "preview"): {"id-token", "pull-requests"},
               ("deploy", "up-dev"): {"id-token"}, ("deploy", "preview-prod"): {"id-token"},
               ("deploy", "up-prod"): {"id-token"}}
    for name, job_id, job in jobs(workflows):
        writes = {k for k, v in job["permissions"].items() if v == "write"}
        assert writes == allowed.get((name, job_id), set()), f"{name}.{job_id}: {writes}"


def test_id_token_write_exactly_on_the_jobs_that_log_in_to_azure(workflows):
    for name, job_id, job in jobs(workflows):
        logs_in = bool(steps_using(job, AZURE_LOGIN))
        assert (job["permissions"].get("id-token") == "write") == logs_in, f"{name}.{job_id}"
    assert sum(bool(steps_using(j, AZURE_LOGIN)) for _, _, j in jobs(workflows)) == 4


def test_every_action_is_pinned_to_a_commit_sha_with_its_version(workflows):
    for path in sorted(WORKFLOWS.glob("*.yml")):
        lines = [line for line in path.read_text().splitlines() if re.match(r"^\s*(-\s+)?uses:", line)]
        assert lines, path
        for line in lines:
            assert SHA_PIN.match(line), f"{path.name}: not pinned to a SHA with a # vX.Y.Z comment: {line}"
    for name, job_id, job in jobs(workflows):
        for step in job["steps"]:
            if "uses" in step:
                assert re.fullmatch(r"[\w.-]+/[\w./-]+@[0-9a-f]{40}", step["uses"]), f"{name}.{job_id}"


def test_one_sha_per_action_across_workflows():
    pins: dict[str, set[str]] = {}
    for path in WORKFLOWS.glob("*.yml"):
        for match in re.finditer(r"uses:\s*([\w.-]+/[\w./-]+)@([0-9a-f]{40})", path.read_text()):
            pins.setdefault(match.group(1), set()).add(match.group(2))
    assert all(len(shas) == 1 for shas in pins.values()), pins


def test_checkout_never_persists_the_token(workflows):
    for name, job_id, job in jobs(workflows):
        for step in steps_using(job, "actions/checkout"):
            assert step.get("with", {}).get("persist-credentials") is False, f"{name}.{job_id}"


def test_no_pull_request_target_and_no_secrets(workflows):
    for name, workflow in workflows.items():
        triggers = workflow["on"] if isinstance(workflow["on"], dict) else {t: None for t in workflow["on"]}
        assert "pull_request_target" not in triggers and "workflow_run" not in triggers, name
    for path in WORKFLOWS.glob("*.yml"):
        text = path.read_text()
        assert "pull_request_target" not in text, path.name
        assert not re.search(r"secrets\.", text), f"{path.name} reads a secret"


def test_azure_login_is_oidc_only(workflows):
    for name, job_id, job in jobs(workflows):
        for step in steps_using(job, AZURE_LOGIN):
            inputs = step["with"]
            assert set(inputs) == {"client-id", "tenant-id", "subscription-id"}, f"{name}.{job_id}: {inputs}"
            assert inputs == {"client-id": "${{ vars.AZURE_CLIENT_ID }}",
                              "tenant-id": "${{ vars.AZURE_TENANT_ID }}",
                              "subscription-id": "${{ vars.AZURE_SUBSCRIPTION_ID }}"}
    text = (WORKFLOWS / "deploy.yml").read_text()
    for forbidden in ("client-secret", "creds:", "ARM_CLIENT_SECRET", "AZURE_CLIENT_SECRET",
                      "AZURE_STORAGE_KEY", "PULUMI_CONFIG_PASSPHRASE", "PULUMI_ACCESS_TOKEN"):
        assert forbidden not in text, forbidden


def test_pulumi_providers_use_oidc_from_repository_variables(workflows):
    env = workflows["deploy"]["env"]
    assert env["ARM_USE_OIDC"] == "true"
    for name in ("CLIENT_ID", "TENANT_ID", "SUBSCRIPTION_ID"):
        assert env[f"ARM_{name}"] == f"${{{{ vars.AZURE_{name} }}}}"
    assert env["PULUMI_BACKEND_URL"] == "${{ vars.PULUMI_BACKEND_URL }}"
    assert env["PULUMI_SECRETS_PROVIDER"] == "${{ vars.PULUMI_SECRETS_PROVIDER }}"
    assert env["AAD_LOGIN_METHOD"] == "azurecli"  # kubelogin reuses azure/login's CLI session


def _context(event: str, ref: str, same_repo: bool) -> dict:
    repo = "octo-org/aks-image-classifier"
    head = repo if same_repo else "someone/aks-image-classifier"
    return {"github": {"event_name": event, "ref": ref, "repository": repo,
                       "event": {"pull_request": {"head": {"repo": {"full_name": head}}}}
                       if event == "pull_request" else {}}}


def _triggered(workflow: dict, event: str, ref: str) -> bool:
    on = workflow["on"]
    if event not in on:
        return False
    branches = (on[event] or {}).get("branches")
    if event == "push" and branches is not None:
        return ref.removeprefix("refs/heads/") in branches
    return True


@pytest.mark.parametrize("case", sorted(EVENTS))
def test_which_deploy_jobs_run_for_each_event(workflows, case):
    event, ref, same_repo, expected = EVENTS[case]
    workflow = workflows["deploy"]
    ran = set()
    if _triggered(workflow, event, ref):
        ran = {job_id for job_id, job in workflow["jobs"].items()
               if evaluate(job.get("if", "true"), _context(event, ref, same_repo))}
    assert ran == expected


def _pulumi_commands(job: dict) -> list[str]:
    return re.findall(r"^\s*(pulumi (?:preview|up|destroy|refresh)\b.*)$", run_text(job), re.MULTILINE)


def test_preview_on_pull_requests_posts_the_diff(workflows):
    job = workflows["deploy"]["jobs"]["preview"]
    commands = _pulumi_commands(job)
    assert commands and all(c.startswith("pulumi preview --stack dev") for c in commands), commands
    assert "--diff" in commands[0]
    script = run_text(job)
    assert "gh pr comment" in script and "preview.txt" in script and 'exit "$status"' in script
    step = next(s for s in job["steps"] if "gh pr comment" in s.get("run", ""))
    assert step["env"]["GH_TOKEN"] == "${{ github.token }}"
    # Untrusted event text never goes into a script: only the number, through the environment.
    assert "${{" not in step["run"]


def test_up_on_main_deploys_dev_and_only_the_dispatch_deploys_prod(workflows):
    deploy = workflows["deploy"]["jobs"]
    assert _pulumi_commands(deploy["up-dev"]) == [
        "pulumi up --stack dev --policy-pack policy --yes --skip-preview --diff "
        "--non-interactive --color never"]
    ups = [j for j, job in deploy.items()
           if any(c.startswith("pulumi up --stack prod") for c in _pulumi_commands(job))]
    assert ups == ["up-prod"]
    assert all(c.startswith("pulumi preview --stack prod") for c in _pulumi_commands(deploy["preview-prod"]))
    assert "workflow_dispatch" in deploy["up-prod"]["if"]
    # Reviewers approve after the prod preview is in the run summary: up-prod waits for it.
    assert deploy["up-prod"]["needs"] == "preview-prod"
    assert "GITHUB_STEP_SUMMARY" in run_text(deploy["preview-prod"])


def test_production_is_gated_by_the_environment(workflows):
    deploy = workflows["deploy"]["jobs"]
    assert deploy["up-prod"]["environment"] == "production"
    # Only the prod job has an environment: any other would change the OIDC subject it presents.
    assert [j for j, job in deploy.items() if "environment" in job] == ["up-prod"]


def test_one_concurrency_group_per_stack_for_updates_never_cancelled(workflows):
    """Updates of one stack queue in one group and are never cancelled mid-way (a cancelled update leaves the
    stack locked and resources half-made). Previews take no lock in the DIY backend (pulumi/pulumi#8642) and
    stay out of the update groups: GitHub keeps one pending run per group and cancels the older pending one,
    so a queued preview would otherwise cancel a queued update."""
    deploy = workflows["deploy"]["jobs"]
    update_groups = {}
    for job_id, job in deploy.items():
        commands = _pulumi_commands(job)
        stacks = {m for c in commands for m in re.findall(r"--stack (\w+)", c)}
        assert len(stacks) == 1, (job_id, stacks)
        stack = stacks.pop()
        group = job["concurrency"]["group"]
        if any(c.startswith("pulumi up") for c in commands):
            assert job["concurrency"] == {"group": f"pulumi-{stack}", "cancel-in-progress": False}, job_id
            update_groups.setdefault(group, []).append(job_id)
        else:
            assert group.startswith(f"pulumi-{stack}-preview"), job_id
    assert update_groups == {"pulumi-dev": ["up-dev"], "pulumi-prod": ["up-prod"]}
    assert deploy["preview"]["concurrency"]["group"] == (
        "pulumi-dev-preview-${{ github.event.pull_request.number }}")
    assert "concurrency" not in workflows["deploy"]  # a workflow-level group would serialise dev and prod


def test_every_pulumi_command_runs_the_policy_pack(workflows):
    """The project's security policy pack (policy/, `pulumi preview --policy-pack policy` in the README)
    guards every preview and update; its venv is the program's (.venv), so its requirements go there too."""
    for job_id, job in workflows["deploy"]["jobs"].items():
        assert all("--policy-pack policy" in c for c in _pulumi_commands(job)), job_id
        assert "-r policy/requirements.txt" in run_text(job), job_id


def test_pulumi_cli_version_matches_the_sdk_pin(workflows):
    pin = re.search(r"^pulumi==([\d.]+)$", (ROOT / "requirements.txt").read_text(), re.MULTILINE).group(1)
    for job_id, job in workflows["deploy"]["jobs"].items():
        (step,) = steps_using(job, "pulumi/actions")
        assert str(step["with"]["pulumi-version"]) == pin, job_id
        assert "command" not in step["with"]  # install only; the job runs the commands itself
        assert steps_using(job, "azure/use-kubelogin"), job_id


def test_every_pulumi_job_logs_in_before_running_pulumi(workflows):
    for job_id, job in workflows["deploy"]["jobs"].items():
        names = [s.get("uses", "").split("@")[0] or s.get("run", "") for s in job["steps"]]
        login = names.index(AZURE_LOGIN)
        first_pulumi = next(i for i, n in enumerate(names) if n.lstrip().startswith("pulumi login"))
        assert login < first_pulumi, job_id
        assert 'pulumi login "$PULUMI_BACKEND_URL"' in run_text(job)
        assert '--secrets-provider "$PULUMI_SECRETS_PROVIDER"' in run_text(job)


def test_ci_runs_the_projects_own_tests(workflows):
    ci = workflows["ci"]
    assert set(ci["on"]) == {"pull_request", "push"}
    (job,) = ci["jobs"].values()
    assert "bash .ci/run" in run_text(job)  # `make install` then `make test`, as the project's CI


def test_container_builds_runs_smoke_tests_and_scans(workflows):
    (job,) = workflows["container"]["jobs"].values()
    script = run_text(job)
    assert "docker build --tag \"$IMAGE\" --file service/Dockerfile service/" in script
    assert "docker run --detach" in script and "127.0.0.1:8080:8080" in script
    smoke = next(s["run"] for s in job["steps"] if "tools/smoke_test.py" in s.get("run", ""))
    assert "--image skimage:chelsea" in smoke and "--expect" in smoke
    assert "--url http://127.0.0.1:8080" in smoke
    (trivy,) = steps_using(job, "aquasecurity/trivy-action")
    assert trivy["with"]["severity"] == "CRITICAL" and str(trivy["with"]["exit-code"]) == "1"
    assert trivy["with"]["image-ref"] == "${{ env.IMAGE }}"
    # trivy 0.69.4 was the compromised release (GHSA-69fq-xp46-6x23); the binary version is pinned too.
    assert trivy["with"]["version"] != "v0.69.4" and re.fullmatch(r"v\d+\.\d+\.\d+", trivy["with"]["version"])
    steps = [s.get("uses", s.get("run", "")) for s in job["steps"]]
    smoke_index = next(i for i, s in enumerate(steps) if "smoke_test.py" in s)
    build_index = next(i for i, s in enumerate(steps) if "docker build" in s)
    assert build_index < smoke_index
