"""Security and delivery properties of .github/workflows, asserted on the parsed files.

Rules modelled: GitHub's "Security hardening for GitHub Actions" (pin actions to a full-length commit SHA;
least-privilege GITHUB_TOKEN permissions; `pull_request_target` runs with the base repository's secrets
and write token, so checking out pull request code under it is unsafe), GitHub's OIDC docs (a job needs
`permissions: id-token: write` to request a token; a job with `environment:` gets the subject
`repo:<owner>/<repo>:environment:<name>`; the token request variables ACTIONS_ID_TOKEN_REQUEST_URL/TOKEN),
and the Azure clients' workload identity environment (azure-identity's WorkloadIdentityCredential and
kubelogin's `workloadidentity` mode read AZURE_CLIENT_ID, AZURE_TENANT_ID and AZURE_FEDERATED_TOKEN_FILE;
Pulumi's Azure providers read ARM_USE_OIDC, ARM_CLIENT_ID, ARM_TENANT_ID, ARM_SUBSCRIPTION_ID and fetch
their own token).
"""

from __future__ import annotations

import re

import pytest

from tests.workflows.conftest import ROOT, WORKFLOWS, run_text, steps_using
from tests.workflows.expressions import evaluate, interpolate

SHA_PIN = re.compile(r"^\s*(?:-\s+)?uses:\s*([\w.-]+/[\w./-]+)@([0-9a-f]{40})\s+#\s+v\d+(\.\d+){0,2}\s*$")
AZURE_LOGIN = "azure/login"
TOKEN_TOOL = "tools/github_oidc_token.py"

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


def _signs_in(job: dict) -> bool:
    return TOKEN_TOOL in run_text(job)


def test_id_token_write_exactly_on_the_jobs_that_sign_in_to_azure(workflows):
    for name, job_id, job in jobs(workflows):
        assert (job["permissions"].get("id-token") == "write") == _signs_in(job), f"{name}.{job_id}"
    assert sum(_signs_in(j) for _, _, j in jobs(workflows)) == 4


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


def test_no_cli_session_and_no_secret(workflows):
    """No job opens an Azure CLI session (azure/login, `az login`): it does not refresh (Azure/login#180,
    #372), and nothing else in a job may depend on it."""
    for name, job_id, job in jobs(workflows):
        assert not steps_using(job, AZURE_LOGIN), f"{name}.{job_id}"
        assert not re.search(r"\baz login\b", run_text(job)), f"{name}.{job_id}"
    text = (WORKFLOWS / "deploy.yml").read_text()
    for forbidden in ("client-secret", "creds:", "ARM_CLIENT_SECRET", "AZURE_CLIENT_SECRET", "azurecli",
                      "AZURE_STORAGE_KEY", "PULUMI_CONFIG_PASSPHRASE", "PULUMI_ACCESS_TOKEN"):
        assert forbidden not in text, forbidden


def test_pulumi_providers_use_oidc_from_repository_variables(workflows):
    env = workflows["deploy"]["env"]
    assert env["ARM_USE_OIDC"] == "true"
    for name in ("TENANT_ID", "SUBSCRIPTION_ID"):
        assert env[f"ARM_{name}"] == f"${{{{ vars.AZURE_{name} }}}}"
    assert env["AZURE_TENANT_ID"] == "${{ vars.AZURE_TENANT_ID }}"
    assert env["PULUMI_BACKEND_URL"] == "${{ vars.PULUMI_BACKEND_URL }}"
    assert env["AAD_LOGIN_METHOD"] == "workloadidentity"


VARS = {"AZURE_CLIENT_ID_PREVIEW": "client-preview", "AZURE_CLIENT_ID_DEV": "client-dev",
        "AZURE_CLIENT_ID_PROD": "client-prod", "AZURE_TENANT_ID": "tenant", "AZURE_SUBSCRIPTION_ID": "sub",
        "PULUMI_BACKEND_URL": "azblob://state?storage_account=a", "PULUMI_SECRETS_PROVIDER_DEV": "kv-dev",
        "PULUMI_SECRETS_PROVIDER_PROD": "kv-prod"}


def job_env(workflow: dict, job: dict) -> dict[str, str]:
    """The environment every step of `job` sees: workflow `env`, then job `env`, expressions substituted with
    `VARS`, then each `NAME=value` a step appends to `$GITHUB_ENV` ($RUNNER_TEMP as `/runner/temp`)."""
    env = {k: interpolate(str(v), {"vars": VARS}) for k, v in {**workflow.get("env", {}),
                                                               **job.get("env", {})}.items()}
    for line in re.findall(r'echo "(\w+=[^"]*)" >> "\$GITHUB_ENV"', run_text(job)):
        name, _, value = line.partition("=")
        env[name] = value.replace("$RUNNER_TEMP", "/runner/temp")
    return env


def _token_refresh(job: dict) -> tuple[str, float]:
    """(file, minutes) of the job's background token refresher."""
    match = re.search(rf'python {TOKEN_TOOL} --file "([^"]+)" --background \\\n\s+--until-minutes (\d+)',
                      run_text(job))
    assert match, "no background token refresher"
    return match.group(1).replace("$RUNNER_TEMP", "/runner/temp"), float(match.group(2))


@pytest.mark.parametrize("job_id", ["preview", "up-dev", "preview-prod", "up-prod"])
def test_tokens_last_the_job(workflows, job_id):
    """Every Azure client of the job gets a fresh federated token for as long as the job may run: the
    providers fetch one themselves (ARM_USE_OIDC + the job's token request variables), and the token file
    the state backend, the secrets provider and kubelogin read is rewritten until the job's timeout."""
    workflow = workflows["deploy"]
    job = workflow["jobs"][job_id]
    env = job_env(workflow, job)
    assert env["ARM_USE_OIDC"] == "true"
    assert env["ARM_CLIENT_ID"] == env["AZURE_CLIENT_ID"] != ""
    assert env["ARM_TENANT_ID"] == env["AZURE_TENANT_ID"] == VARS["AZURE_TENANT_ID"]
    assert env["AAD_LOGIN_METHOD"] == "workloadidentity"
    path, minutes = _token_refresh(job)
    assert env["AZURE_FEDERATED_TOKEN_FILE"] == path
    assert minutes >= job["timeout-minutes"]
    names = [s.get("name", "") + s.get("run", "") for s in job["steps"]]
    refresher = next(i for i, n in enumerate(names) if TOKEN_TOOL in n)
    setup_python = next(i for i, s in enumerate(job["steps"]) if "actions/setup-python" in s.get("uses", ""))
    first_pulumi = next(i for i, n in enumerate(names) if re.search(r"^\s*pulumi ", n, re.MULTILINE))
    assert setup_python < refresher < first_pulumi


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_ci_stacks_sign_in_to_kubernetes_with_the_token_file(stack):
    """The program writes its kubelogin mode into the provider kubeconfig (`kubelogin get-token --login
    <kubeloginMode>`); the CI stacks must say workloadidentity, or kubelogin would look for an Azure CLI
    session that no job opens."""
    from stacks.kubeconfig import kubelogin_args
    from tests.harness.stack_mocks import stack_file_config

    mode = stack_file_config(stack, ROOT)["aks-image-classifier:kubeloginMode"]
    assert mode == "workloadidentity"
    assert kubelogin_args(mode, "tenant")[:3] == ["get-token", "--login", "workloadidentity"]


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


def test_every_pulumi_job_signs_in_before_running_pulumi(workflows):
    for job_id, job in workflows["deploy"]["jobs"].items():
        names = [s.get("run", "") for s in job["steps"]]
        refresher = next(i for i, n in enumerate(names) if TOKEN_TOOL in n)
        first_pulumi = next(i for i, n in enumerate(names) if n.lstrip().startswith("pulumi login"))
        assert refresher < first_pulumi, job_id
        assert 'pulumi login "$PULUMI_BACKEND_URL"' in run_text(job)


def test_only_updates_create_stacks(workflows):
    """A preview identity cannot write state: previews select an existing stack; updates may create it with
    their stack's secrets provider."""
    for job_id, job in workflows["deploy"]["jobs"].items():
        selects = re.findall(r"pulumi stack select .*", run_text(job))
        assert len(selects) == 1, job_id
        if job_id.startswith("up-"):
            assert selects[0].endswith('--create --secrets-provider "$PULUMI_SECRETS_PROVIDER"'), job_id
        else:
            assert "--create" not in selects[0], job_id


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


def _subject(job: dict, event: str) -> str:
    """The OIDC subject GitHub gives `job` for `event` on main (GitHub OIDC docs: an `environment:` job gets
    the environment subject; otherwise a pull request gets `pull_request`, a branch run `ref:<ref>`)."""
    repo = "octo-org/aks-image-classifier"
    if "environment" in job:
        return f"repo:{repo}:environment:{job['environment']}"
    return f"repo:{repo}:pull_request" if event == "pull_request" else f"repo:{repo}:ref:refs/heads/main"


JOB_EVENT = {"preview": "pull_request", "up-dev": "push", "preview-prod": "workflow_dispatch",
             "up-prod": "workflow_dispatch"}


@pytest.fixture(scope="module")
def bootstrap():
    from tests.bootstrap.harness import run_bootstrap

    return run_bootstrap()


@pytest.mark.parametrize("job_id", sorted(JOB_EVENT))
def test_each_job_signs_in_as_the_identity_its_subject_is_federated_with(workflows, bootstrap, job_id):
    """The client id a job presents (from the variables the bootstrap prints) belongs to the identity whose
    federated credential matches the subject GitHub gives that job: Entra accepts nothing else
    (AADSTS700213), and no job borrows a more trusted identity."""
    import shlex

    variables = {}
    for line in bootstrap.outputs["ghVariableCommands"].splitlines():
        argv = shlex.split(line)
        variables[argv[3]] = argv[argv.index("--body") + 1]
    workflow = workflows["deploy"]
    job = workflow["jobs"][job_id]
    raw = {**workflow["env"], **job["env"]}
    env = {k: interpolate(str(v), {"vars": variables}) for k, v in raw.items()}
    subject = _subject(job, JOB_EVENT[job_id])
    level = next(level for level, s in bootstrap.outputs["federatedSubjects"].items() if s == subject)
    assert env["AZURE_CLIENT_ID"] == env["ARM_CLIENT_ID"] == bootstrap.outputs[f"{level}ClientId"]
    expected_level = {"preview": "preview", "up-dev": "dev", "preview-prod": "dev", "up-prod": "prod"}[job_id]
    assert level == expected_level
    stack = "prod" if job_id.endswith("prod") else "dev"
    assert env["PULUMI_SECRETS_PROVIDER"] == bootstrap.outputs[f"{stack}SecretsProvider"]


def test_prod_jobs_run_on_the_prod_runner_and_pull_requests_never_do(workflows, bootstrap):
    """Prod's API server admits only its authorized ranges: the jobs that talk to it run on the runner the
    bootstrap declares (its labels), whose egress is the NAT gateway's address. Pull request code never runs
    on a self-hosted runner (GitHub: self-hosted runners are unsafe for untrusted code)."""
    import json
    import shlex

    variables = {}
    for line in bootstrap.outputs["ghVariableCommands"].splitlines():
        argv = shlex.split(line)
        variables[argv[3]] = argv[argv.index("--body") + 1]
    deploy = workflows["deploy"]["jobs"]
    for job_id in ("preview-prod", "up-prod"):
        # GitHub evaluates `fromJSON(vars.NAME)` to the variable's JSON value (expressions docs, fromJSON).
        (name,) = re.fullmatch(r"\$\{\{ fromJSON\(vars\.(\w+)\) \}\}", deploy[job_id]["runs-on"]).groups()
        assert json.loads(variables[name]) == bootstrap.outputs["runnerLabels"] == ["self-hosted", "aic-prod"]
    for job_id in ("preview", "up-dev"):
        assert deploy[job_id]["runs-on"] == "ubuntu-24.04", job_id
    for name, job_id, job in jobs(workflows):
        if "PROD_RUNNER_LABELS" in str(job["runs-on"]):
            assert "pull_request" not in job.get("if", "") and job.get("if"), f"{name}.{job_id}"
            assert not evaluate(job["if"], _context("pull_request", "refs/pull/7/merge", True)), job_id
