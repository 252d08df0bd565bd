"""Bitrix24's REST as the application calls it: JSON to ``<portal>/rest/<method>`` with the access token,
refreshed through the OAuth server when it ran out (access tokens live an hour, refresh tokens 180 days)."""

from __future__ import annotations

import asyncio
import time
from typing import Any
from urllib.parse import urlsplit

import aiohttp

from crmtel.bitrix24.tokens import Tokens, TokenStore
from crmtel.config import Bitrix24Settings
from crmtel.errors import CrmtelError

# Refresh this long before the portal's expiry (clocks differ; a request takes time).
_EARLY = 60.0


class B24Error(CrmtelError):
    """The portal (or the way to it) said no; ``status`` None means no answer at all."""

    def __init__(self, status: int | None, code: str, description: str) -> None:
        super().__init__(f"{status or 'no answer'} {code}: {description}")
        self.status, self.code, self.description = status, code, description


class Bitrix24Client:
    """Calls REST methods with the stored tokens; one refresh at a time."""

    def __init__(self, settings: Bitrix24Settings, tokens: TokenStore) -> None:
        self.settings = settings
        self.tokens = tokens
        self.rest = settings.portal.rstrip("/") + "/rest/"
        self._session: aiohttp.ClientSession | None = None
        self._refresh_lock = asyncio.Lock()
        self.refreshes = 0

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=self.settings.timeout_seconds)
            )
        return self._session

    async def aclose(self) -> None:
        """Close the HTTP client."""
        if self._session is not None:
            await self._session.close()

    def same_portal(self, domain: str) -> bool:
        """Whether an event's ``auth[domain]`` is the configured portal."""
        return (urlsplit(self.settings.portal).netloc or "").lower() == domain.strip().lower()

    async def call(self, method: str, params: dict[str, Any]) -> Any:
        """The method's ``result``; B24Error for an error answer or no answer."""
        tokens = await self.tokens.load()
        if tokens is None:
            raise B24Error(None, "NOT_INSTALLED", "the application is not installed on the portal yet")
        if tokens.expires_at - _EARLY < time.time():
            tokens = await self.refresh(tokens)
        try:
            return await self._post(method, params, tokens.access_token)
        except B24Error as err:
            if err.code not in ("expired_token", "invalid_token"):
                raise
        # The portal disagrees about the token's life: refresh once and try again.
        tokens = await self.refresh(tokens)
        return await self._post(method, params, tokens.access_token)

    async def call_with(self, method: str, params: dict[str, Any], access_token: str) -> Any:
        """One call with a given token (checking an install event's tokens before trusting them)."""
        return await self._post(method, params, access_token)

    async def _post(self, method: str, params: dict[str, Any], access_token: str) -> Any:
        try:
            async with self._http().post(
                self.rest + method, json={**params, "auth": access_token}
            ) as response:
                status = response.status
                try:
                    body = await response.json(content_type=None)
                except ValueError:
                    body = None
        except (aiohttp.ClientError, TimeoutError) as err:
            raise B24Error(None, "NO_ANSWER", f"{err.__class__.__name__}: {err}") from err
        if not isinstance(body, dict):
            raise B24Error(status, "ERROR_UNEXPECTED_ANSWER", f"HTTP {status} without a JSON object")
        if "error" in body or status >= 400:
            raise B24Error(status, str(body.get("error", "")), str(body.get("error_description", ""))[:500])
        return body.get("result")

    async def refresh(self, stale: Tokens) -> Tokens:
        """New tokens from the OAuth server (or the ones another caller just got)."""
        async with self._refresh_lock:
            current = await self.tokens.load()
            if current is not None and current.access_token != stale.access_token:
                return current  # refreshed meanwhile
            query = {
                "grant_type": "refresh_token",
                "client_id": self.settings.client_id,
                "client_secret": self.settings.client_secret.get_secret_value(),
                "refresh_token": stale.refresh_token,
            }
            url = self.settings.oauth_server.rstrip("/") + "/oauth/token/"
            try:
                async with self._http().get(url, params=query) as response:
                    status = response.status
                    try:
                        body = await response.json(content_type=None)
                    except ValueError:
                        body = None
            except (aiohttp.ClientError, TimeoutError) as err:
                raise B24Error(None, "NO_ANSWER", f"OAuth server: {err.__class__.__name__}") from err
            if status != 200 or not isinstance(body, dict) or "access_token" not in body:
                # Never the answer itself in the error: it could hold a token.
                code = str(body.get("error", "")) if isinstance(body, dict) else ""
                raise B24Error(
                    status, code or "OAUTH_FAILED", "the OAuth server refused to refresh the tokens"
                )
            self.refreshes += 1
            fresh = Tokens(
                access_token=str(body["access_token"]),
                refresh_token=str(body.get("refresh_token") or stale.refresh_token),
                expires_at=time.time() + float(body.get("expires_in") or 3600),
                application_token=stale.application_token,
                member_id=str(body.get("member_id") or stale.member_id),
            )
            await self.tokens.save(fresh)
            return fresh
