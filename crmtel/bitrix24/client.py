"""Bitrix24's REST as the application calls it: JSON to ``<portal>/rest/<method>`` with the access token,
refreshed through the OAuth server when it ran out (access tokens live an hour, refresh tokens 180 days).
In the legacy webhook mode the same calls go to the incoming webhook's address (``<portal>/rest/<user>/<code>/``),
with no token at all."""

from __future__ import annotations

import asyncio
import base64
import json
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aiohttp

from crmtel.bitrix24.tokens import Tokens, TokenStore
from crmtel.config import Bitrix24Settings
from crmtel.connectors.answers import json_answer
from crmtel.connectors.rate import Limiter, RateLimits
from crmtel.errors import CrmtelError

# Refresh this long before the portal's expiry (clocks differ; a request takes time).
_EARLY = 60.0
# Bytes of a file read at a time for an upload (a multiple of 3: base64 pieces join without padding).
_CHUNK = 3 * 128 * 1024
# Counted in the portal's bucket but never queued behind deliveries: routing must answer within its deadline
# (the burst crmtel leaves unused is theirs; refused, routing fails open).
_UNQUEUED = frozenset({"telephony.externalcall.searchcrmentities"})


class B24Error(CrmtelError):
    """The portal (or the way to it) said no; ``status`` None means no answer at all."""

    def __init__(self, status: int | None, code: str, description: str, method: str = "") -> None:
        super().__init__(f"{status or 'no answer'} {code}: {description}")
        self.status, self.code, self.description = status, code, description
        # The REST method that was refused ("" for the OAuth server).
        self.method = method


def json_with_file(params: dict[str, Any], field: str, path: Path) -> tuple[int, AsyncIterator[bytes]]:
    """A JSON object of ``params`` plus ``field`` = the file's content in base64, as its exact length and a
    stream of chunks (a multiple of 3 bytes of the file each, so the base64 pieces join into one)."""
    head = json.dumps(params, ensure_ascii=True)[:-1]
    opening = (head + (", " if params else "") + json.dumps(field) + ': "').encode()
    closing = b'"}'
    size = path.stat().st_size
    length = len(opening) + 4 * ((size + 2) // 3) + len(closing)

    async def chunks() -> AsyncIterator[bytes]:
        yield opening
        with path.open("rb") as fh:
            while piece := await asyncio.to_thread(fh.read, _CHUNK):
                yield base64.b64encode(piece)
        yield closing

    return length, chunks()


class Bitrix24Client:
    """Calls REST methods with the stored tokens; one refresh at a time."""

    def __init__(
        self, settings: Bitrix24Settings, tokens: TokenStore, *, limits: RateLimits | None = None
    ) -> None:
        self.settings = settings
        # Every REST request is paced here (the portal counts them all), one bucket per cluster when shared.
        self.rate: Limiter = (limits or RateLimits()).limit(
            "bitrix24:rest", settings.rate_per_second, settings.rate_burst
        )
        self.tokens = tokens
        self.webhook = settings.webhook_mode
        # The webhook's address holds its secret code: it is never put into an error or a log line.
        hook = settings.webhook_url.get_secret_value()
        self.rest = hook.rstrip("/") + "/" if hook else settings.portal.rstrip("/") + "/rest/"
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
        if self.webhook:
            return await self._post(method, params, None)
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

    async def upload(self, method: str, params: dict[str, Any], field: str, path: Path) -> Any:
        """``call`` with a file's content as the base64 field ``field``, streamed from disk: the request body is
        written a chunk at a time, so memory does not follow the file's size."""
        if self.webhook:
            return await self._post(method, params, None, (field, path))
        tokens = await self.tokens.load()
        if tokens is None:
            raise B24Error(None, "NOT_INSTALLED", "the application is not installed on the portal yet")
        if tokens.expires_at - _EARLY < time.time():
            tokens = await self.refresh(tokens)
        try:
            return await self._post(method, params, tokens.access_token, (field, path))
        except B24Error as err:
            if err.code not in ("expired_token", "invalid_token"):
                raise
        tokens = await self.refresh(tokens)
        return await self._post(method, params, tokens.access_token, (field, path))

    async def call_with(self, method: str, params: dict[str, Any], access_token: str) -> Any:
        """One call with a given token (checking an install event's tokens before trusting them)."""
        return await self._post(method, params, access_token)

    async def _post(
        self,
        method: str,
        params: dict[str, Any],
        access_token: str | None,
        upload: tuple[str, Path] | None = None,
    ) -> Any:
        if method.lower() in _UNQUEUED:
            await self.rate.note()
        else:
            await self.rate.acquire()
        body_out = params if access_token is None else {**params, "auth": access_token}
        if upload is None:
            request = self._http().post(self.rest + method, json=body_out)
        else:
            length, stream = json_with_file(body_out, *upload)
            headers = {"Content-Type": "application/json", "Content-Length": str(length)}
            request = self._http().post(self.rest + method, data=stream, headers=headers)
        try:
            async with request as response:
                status = response.status
                try:
                    body = await json_answer(response)
                except ValueError:
                    body = None
        except (aiohttp.ClientError, TimeoutError) as err:
            text = f"{err.__class__.__name__}: {err}".replace(self.rest, "<rest>/")
            raise B24Error(None, "NO_ANSWER", text, method) from err
        if not isinstance(body, dict):
            raise B24Error(status, "ERROR_UNEXPECTED_ANSWER", f"HTTP {status} without a JSON object", method)
        if "error" in body or status >= 400:
            error, description = str(body.get("error", "")), str(body.get("error_description", ""))[:500]
            raise B24Error(status, error, description, method)
        return body.get("result")

    async def refresh(self, stale: Tokens) -> Tokens:
        """New tokens from the OAuth server (or the ones another caller just got)."""
        async with self._refresh_lock:
            current = await self.tokens.load()
            if current is not None and current.access_token != stale.access_token:
                return current  # refreshed meanwhile
            body = await self._oauth({"grant_type": "refresh_token", "refresh_token": stale.refresh_token})
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

    async def authorize(self, code: str) -> Tokens:
        """The first tokens from an authorization code (crmtel without a public address gets no install event);
        believed only if they work on the configured portal and it names this application."""
        body = await self._oauth({"grant_type": "authorization_code", "code": code})
        if not self.same_portal(str(body.get("domain") or "")):
            raise B24Error(None, "OAUTH_FAILED", "the code was issued for another portal")
        access = str(body["access_token"])
        info = await self.call_with("app.info", {}, access)
        if not isinstance(info, dict) or info.get("CODE") != self.settings.client_id:
            raise B24Error(None, "OAUTH_FAILED", "the code was issued for another application")
        fresh = Tokens(
            access_token=access,
            refresh_token=str(body.get("refresh_token") or ""),
            expires_at=time.time() + float(body.get("expires_in") or 3600),
            application_token="",  # events are polled (event.offline.get), none is posted to crmtel
            member_id=str(body.get("member_id") or ""),
        )
        await self.tokens.save(fresh)
        return fresh

    async def _oauth(self, grant: dict[str, str]) -> dict[str, Any]:
        query = {
            **grant,
            "client_id": self.settings.client_id,
            "client_secret": self.settings.client_secret.get_secret_value(),
        }
        url = self.settings.oauth_server.rstrip("/") + "/oauth/token/"
        try:
            async with self._http().get(url, params=query) as response:
                status = response.status
                try:
                    body = await json_answer(response)
                except ValueError:
                    body = None
        except (aiohttp.ClientError, TimeoutError) as err:
            raise B24Error(None, "NO_ANSWER", f"OAuth server: {err.__class__.__name__}") from err
        if status != 200 or not isinstance(body, dict) or "access_token" not in body:
            # Never the answer itself in the error: it could hold a token.
            code = str(body.get("error", "")) if isinstance(body, dict) else ""
            raise B24Error(status, code or "OAUTH_FAILED", "the OAuth server refused to issue the tokens")
        return body
