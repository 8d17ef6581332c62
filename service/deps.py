"""FastAPI dependencies, in one place (as the FastAPI full-stack template's ``api/deps.py``).

- ``EngineDep``: the app's ``InferenceEngine`` (``app.state.engine``);
- ``SettingsDep``: the ``Settings`` the app was created with (``app.state.settings``), so tests inject
  their own through ``create_app(settings)``;
- ``API_KEY_REQUIRED``: ``dependencies=`` of the routes the optional ``API_KEY`` protects (``/predict``,
  V2 infer): ``Authorization: Bearer <key>``, compared in constant time (``hmac.compare_digest``),
  else 401 with ``WWW-Authenticate: Bearer`` (RFC 6750 section 3).

All are ``async`` so that FastAPI calls them on the event loop (no thread-pool hop per request).
"""

from __future__ import annotations

import hmac
from typing import Annotated

from fastapi import Depends, Request, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from service.errors import Unauthorized
from service.inference import InferenceEngine
from service.settings import Settings


async def get_engine(request: Request) -> InferenceEngine:
    """The app's ``InferenceEngine``."""
    return request.app.state.engine


async def get_settings(request: Request) -> Settings:
    """The ``Settings`` the app was created with."""
    return request.app.state.settings


EngineDep = Annotated[InferenceEngine, Depends(get_engine)]
SettingsDep = Annotated[Settings, Depends(get_settings)]

bearer = HTTPBearer(auto_error=False, scheme_name="APIKey",
                    description="`Authorization: Bearer <API_KEY>`; needed only if the server sets API_KEY.")
Credentials = Annotated[HTTPAuthorizationCredentials | None, Security(bearer)]


async def require_api_key(settings: SettingsDep, credentials: Credentials) -> None:
    """Pass when ``API_KEY`` is unset or the bearer token equals it, else raise ``Unauthorized`` (401).

    The comparison is on UTF-8 bytes with ``hmac.compare_digest`` (constant time in the token's
    content; non-ASCII tokens are compared, not rejected with a 500).
    """
    expected = settings.api_key
    if expected is None:
        return
    if credentials is None or not credentials.credentials:
        raise Unauthorized("this endpoint needs 'Authorization: Bearer <API key>'",
                           headers={"WWW-Authenticate": 'Bearer realm="aks-image-classifier"'})
    if not hmac.compare_digest(credentials.credentials.encode(), expected.get_secret_value().encode()):
        raise Unauthorized("invalid API key", headers={
            "WWW-Authenticate": 'Bearer realm="aks-image-classifier", error="invalid_token"'})


#: ``dependencies=`` of the routes the key protects (``/predict``, V2 infer).
API_KEY_REQUIRED = [Security(require_api_key)]
