"""Push to ACR as the deployer's Entra identity: exchange an ARM access token for an ACR refresh token.

This is what `az acr login --expose-token` does. The ACR token server
(`POST https://<login server>/oauth2/exchange`, documented in the ACR "AAD OAuth" authentication
reference) takes `grant_type=access_token`, `service=<login server>`, `tenant=<tenant id>` and
`access_token=<ARM token>`, and answers `{"refresh_token": "..."}`. Docker then logs in with the
fixed user name `00000000-0000-0000-0000-000000000000` and that refresh token as password (valid
about 3 hours). No admin user, no long-lived token in the registry, nothing to rotate; the deployer
needs AcrPush (Owner and Contributor include it) on the registry.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request

ACR_TOKEN_USERNAME = "00000000-0000-0000-0000-000000000000"


class AcrAuthError(RuntimeError):
    """The registry refused the token exchange (wrong tenant, no AcrPush, registry unreachable)."""


def exchange_refresh_token(
    login_server: str,
    tenant_id: str,
    access_token: str,
    *,
    scheme: str = "https",
    timeout_s: float = 30.0,
) -> str:
    """Return an ACR refresh token for `login_server` (e.g. `myacr.azurecr.io`) from an ARM token.

    Raises `AcrAuthError` with the registry's answer on HTTP errors or a response without
    `refresh_token`. `scheme` exists for tests against a local HTTP server.
    """
    body = urllib.parse.urlencode(
        {
            "grant_type": "access_token",
            "service": login_server,
            "tenant": tenant_id,
            "access_token": access_token,
        }
    ).encode()
    request = urllib.request.Request(
        f"{scheme}://{login_server}/oauth2/exchange",
        data=body,
        headers={"Content-Type": "application/x-www-form-urlencoded"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as response:
            payload = json.loads(response.read().decode("utf-8"))
    except urllib.error.HTTPError as exc:
        detail = exc.read().decode("utf-8", "replace")[:500]
        raise AcrAuthError(f"ACR token exchange at {login_server} failed: HTTP {exc.code} {detail}") from exc
    except (urllib.error.URLError, TimeoutError, json.JSONDecodeError) as exc:
        raise AcrAuthError(f"ACR token exchange at {login_server} failed: {exc}") from exc
    token = payload.get("refresh_token") if isinstance(payload, dict) else None
    if not token:
        raise AcrAuthError(f"ACR token exchange at {login_server} returned no refresh_token")
    return token
