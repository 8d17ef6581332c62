"""Keep a file holding a fresh GitHub Actions OIDC token for as long as a job runs.

Azure's workload identity clients read a federated token from `AZURE_FEDERATED_TOKEN_FILE` each time they need
a new Entra access token: azure-identity's `WorkloadIdentityCredential` (the Pulumi CLI's azblob state backend
and azurekeyvault secrets provider, through the default credential chain) and kubelogin's `workloadidentity`
login mode (Azure/kubelogin docs, "Login modes"). GitHub's tokens last minutes, so one token written at the
start of a job would not outlive a 30-90 minute `pulumi up`; an Azure CLI session opened once from one token
does not refresh either (Azure/login#180, #372). This tool fetches a token from the job's token endpoint
(`ACTIONS_ID_TOKEN_REQUEST_URL` + `&audience=...`, bearer `ACTIONS_ID_TOKEN_REQUEST_TOKEN`: GitHub docs,
"OpenID Connect", "Requesting the JWT using environment variables"), writes it atomically with mode 0600,
then keeps rewriting it every `--every` seconds until `--until-minutes` have passed (`--background`: in a
detached child whose errors go to `<file>.log`).

    python tools/github_oidc_token.py --file "$AZURE_FEDERATED_TOKEN_FILE" --background --until-minutes 95

Exit status 0 once the first token is written; 1 (one line on stderr) when the endpoint is missing or fails.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path

#: The audience Entra expects for workload identity federation
#: (learn.microsoft.com/entra/workload-id/workload-identity-federation-create-trust, GitHub tab).
AUDIENCE = "api://AzureADTokenExchange"
#: Seconds between refreshes: well inside a GitHub token's lifetime (minutes) and Entra's assertion reuse.
DEFAULT_EVERY_S = 240.0


class TokenError(RuntimeError):
    """The token endpoint is not configured or did not answer with a token."""


def token_url(request_url: str, audience: str = AUDIENCE) -> str:
    """`request_url` with `audience` added as a query parameter (the URL already carries a query)."""
    parts = urllib.parse.urlsplit(request_url)
    query = urllib.parse.parse_qsl(parts.query, keep_blank_values=True)
    query = [(k, v) for k, v in query if k != "audience"] + [("audience", audience)]
    return urllib.parse.urlunsplit(parts._replace(query=urllib.parse.urlencode(query)))


def fetch(request_url: str, request_token: str, audience: str = AUDIENCE, timeout_s: float = 30.0) -> str:
    """One token (a JWT string) from the job's token endpoint. Raises TokenError."""
    if not request_url or not request_token:
        raise TokenError("ACTIONS_ID_TOKEN_REQUEST_URL/TOKEN are not set (job without id-token: write?)")
    request = urllib.request.Request(token_url(request_url, audience),
                                     headers={"Authorization": f"Bearer {request_token}"})
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as response:
            value = json.load(response).get("value")
    except (OSError, ValueError) as error:
        raise TokenError(f"token request failed: {error}") from error
    if not isinstance(value, str) or not value:
        raise TokenError("token endpoint answered without a `value`")
    return value


def write(path: Path, token: str) -> None:
    """Replace `path` with `token` atomically (a reader never sees a partial file), mode 0600."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        handle.write(token)
    os.replace(temporary, path)


def refresh(path: Path, url: str, token: str, audience: str, every_s: float, until: float) -> int:
    """Rewrite `path` every `every_s` seconds until `time.monotonic()` passes `until`; a failed fetch is
    retried at the next tick (the file keeps the last good token). Returns the number of writes."""
    writes = 0
    while time.monotonic() + every_s < until:
        time.sleep(every_s)
        try:
            write(path, fetch(url, token, audience))
            writes += 1
        except TokenError as error:
            print(f"github_oidc_token: {error}", file=sys.stderr)
    return writes


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--file", required=True, type=Path)
    parser.add_argument("--audience", default=AUDIENCE)
    parser.add_argument("--every", type=float, default=DEFAULT_EVERY_S, help="seconds between refreshes")
    parser.add_argument("--until-minutes", type=float, default=0.0, help="keep refreshing this long")
    parser.add_argument("--background", action="store_true", help="refresh in a detached child process")
    args = parser.parse_args(argv)
    url = os.environ.get("ACTIONS_ID_TOKEN_REQUEST_URL", "")
    request_token = os.environ.get("ACTIONS_ID_TOKEN_REQUEST_TOKEN", "")
    try:
        write(args.file, fetch(url, request_token, args.audience))
    except TokenError as error:
        print(f"github_oidc_token: {error}", file=sys.stderr)
        return 1
    until = time.monotonic() + args.until_minutes * 60
    if args.background:
        if os.fork() != 0:
            return 0
        os.setsid()
        # Detach from the step's pipes (the step ends when its shell exits); errors go to `<file>.log`.
        log_path = args.file.with_name(args.file.name + ".log")
        log = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        os.dup2(log, 1)
        os.dup2(log, 2)
    if args.until_minutes > 0:
        writes = refresh(args.file, url, request_token, args.audience, args.every, until)
        print(f"github_oidc_token: stopped after {writes} refreshes", file=sys.stderr, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
