"""amoCRM's API v4 as the integration calls it: ``Authorization: Bearer``, tokens refreshed at
``/oauth2/access_token`` (access 24 h, refresh 3 months; each refresh gives a new refresh token), sealed at rest."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import aiohttp

from crmtel.config import AmoCrmSettings
from crmtel.connectors.answers import json_answer
from crmtel.connectors.rate import Limiter, RateLimits
from crmtel.connectors.sealing import Sealer
from crmtel.errors import CrmtelError
from crmtel.store.outbox import SealedTokens

CONNECTOR = "amocrm"
_EARLY = 60.0


class AmoError(CrmtelError):
    """amoCRM (or the way to it) said no; ``status`` None means no answer."""

    def __init__(self, status: int | None, detail: str, retry_after: float | None = None) -> None:
        super().__init__(f"{status or 'no answer'}: {detail}")
        self.status, self.detail, self.retry_after = status, detail, retry_after


class AmoClient:
    """JSON requests with the stored tokens; one refresh at a time."""

    def __init__(
        self, settings: AmoCrmSettings, sealed: SealedTokens, *, limits: RateLimits | None = None
    ) -> None:
        self.settings = settings
        self._sealed = sealed
        self._sealer = Sealer(settings.client_secret.get_secret_value(), CONNECTOR)
        self._session: aiohttp.ClientSession | None = None
        self._lock = asyncio.Lock()
        # Every request to the API is paced here, the one repeated after a refresh too (amoCRM counts them all).
        # (one bucket for the cluster's nodes when ``limits`` is shared)
        self.rate: Limiter = (limits or RateLimits()).limit("amocrm:api", settings.rate_per_second)
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

    async def tokens(self) -> dict[str, Any] | None:
        """The stored tokens (None before ``crmtel amocrm authorize``)."""
        text = await self._sealed.load(CONNECTOR)
        return self._sealer.open(text) if text is not None else None

    async def _save(self, body: dict[str, Any]) -> dict[str, Any]:
        tokens = {
            "access_token": str(body["access_token"]),
            "refresh_token": str(body["refresh_token"]),
            "expires_at": time.time() + float(body.get("expires_in") or 86400),
        }
        await self._sealed.save(CONNECTOR, self._sealer.seal(tokens), datetime.now(UTC))
        return tokens

    async def _grant(self, grant: dict[str, str]) -> dict[str, Any]:
        body = {
            "client_id": self.settings.client_id,
            "client_secret": self.settings.client_secret.get_secret_value(),
            "redirect_uri": self.settings.redirect_uri,
            **grant,
        }
        try:
            async with self._http().post(self.settings.token_url, json=body) as response:
                status = response.status
                try:
                    answer = await json_answer(response)
                except ValueError:
                    answer = None
        except (aiohttp.ClientError, TimeoutError) as err:
            raise AmoError(None, f"OAuth: {err.__class__.__name__}") from err
        if status != 200 or not isinstance(answer, dict) or "access_token" not in answer:
            # Never the answer itself: it could hold a token.
            raise AmoError(status, "the OAuth server refused the grant")
        return await self._save(answer)

    async def authorize(self, code: str) -> None:
        """Exchange the authorization code (shown once in amoCRM) for the first tokens."""
        await self._grant({"grant_type": "authorization_code", "code": code})

    async def _refresh(self, stale: dict[str, Any]) -> dict[str, Any]:
        async with self._lock:
            current = await self.tokens()
            if current is not None and current["access_token"] != stale["access_token"]:
                return current
            fresh = await self._grant(
                {"grant_type": "refresh_token", "refresh_token": str(stale["refresh_token"])}
            )
            self.refreshes += 1
            return fresh

    async def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        params: Mapping[str, str] | Sequence[tuple[str, str]] | None = None,
    ) -> Any:
        """The JSON answer (None for 204); AmoError for an error answer or none."""
        tokens = await self.tokens()
        if tokens is None:
            raise AmoError(None, "not authorized yet: run `crmtel amocrm authorize CODE`")
        if float(tokens["expires_at"]) - _EARLY < time.time():
            tokens = await self._refresh(tokens)
        status, answer, wait = await self._send(method, path, body, params, str(tokens["access_token"]))
        if status == 401:
            tokens = await self._refresh(tokens)
            status, answer, wait = await self._send(method, path, body, params, str(tokens["access_token"]))
        if status >= 400:
            raise AmoError(status, _detail(answer, status)[:500], wait)
        return answer

    async def _send(
        self,
        method: str,
        path: str,
        body: Any,
        params: Mapping[str, str] | Sequence[tuple[str, str]] | None,
        token: str,
    ) -> tuple[int, Any, float | None]:
        await self.rate.acquire()
        url = self.settings.api + path
        headers = {"Authorization": f"Bearer {token}"}
        try:
            async with self._http().request(
                method, url, json=body, params=params, headers=headers
            ) as response:
                status = response.status
                wait = response.headers.get("Retry-After")
                answer = None if status == 204 else await json_answer(response)
        except ValueError:
            return status, None, None
        except (aiohttp.ClientError, TimeoutError) as err:
            raise AmoError(None, f"{err.__class__.__name__}: {err}") from err
        return status, answer, float(wait) if wait and wait.replace(".", "", 1).isdigit() else None


def _detail(answer: Any, status: int) -> str:
    """What amoCRM said: its detail, and for a validation error which fields of which item and why."""
    if not isinstance(answer, dict):
        return f"HTTP {status}"
    detail = str(answer.get("detail") or answer.get("title") or f"HTTP {status}")
    invalid = answer.get("validation-errors")
    if isinstance(invalid, list):
        fields = [
            f"[{item.get('request_id')}] {e.get('path')}: {e.get('code')}"
            for item in invalid
            if isinstance(item, dict)
            for e in item.get("errors") or []
            if isinstance(e, dict)
        ]
        detail += " (" + "; ".join(fields) + ")"
    return detail
