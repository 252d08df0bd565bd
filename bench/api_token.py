"""Benchmark of the JSON API with an API token: what checking ``Authorization: Bearer`` in the store adds to a
request, against the same request with a browser session (whose token is cached in memory).

Both clients ask ``GET /api/calls?limit=20`` of the same manager, one request at a time, over loopback on the
same app and database; the token's check reads the store on every request (so a revocation holds at once on
every node), the session's only on a node's first sight of it.

    python bench/api_token.py                   # 1,000 requests each way, SQLite in a temp folder
    python bench/api_token.py --database-url postgresql+asyncpg://…
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import aiohttp
import samerun
import smoke
from aiohttp.test_utils import TestServer
from benchdb import temp_sqlite

from crmtel.apitokens.models import Scope
from crmtel.apitokens.service import ApiTokens
from crmtel.config import LogSettings, WebSettings
from crmtel.logging import configure
from crmtel.push.hub import Hub
from crmtel.push.web import create_app
from crmtel.store.api_tokens import ApiTokenRepository
from crmtel.store.db import Database, upgrade
from crmtel.store.managers import ManagerRepository

FIGURES = (
    r"^baseline \(same run\): panoramisk bare parser [\d,]+ events/s; fixed CPU loop",
    r"^session cookie \(baseline\): [\d,]+ requests, p50 [\d.]+ ms, p99 [\d.]+ ms",
    r"^API token: [\d,]+ requests, p50 [\d.]+ ms, p99 [\d.]+ ms",
)
PASSWORD = "bench-password-1"


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _line(label: str, samples: list[float]) -> str:
    ms = [s * 1000 for s in samples]
    return f"{label}: {len(ms):,} requests, p50 {statistics.median(ms):.2f} ms, p99 {_pct(ms, 0.99):.2f} ms"


async def _timed(http: aiohttp.ClientSession, count: int, headers: dict[str, str]) -> list[float]:
    out = []
    for _ in range(count):
        started = time.perf_counter()
        async with http.get("/api/calls?limit=20", headers=headers) as r:
            await r.read()
            assert r.status == 200, r.status
        out.append(time.perf_counter() - started)
    return out


async def run(args: argparse.Namespace, url: str) -> None:
    configure(LogSettings(level="warning"))
    await upgrade(url)
    db = Database(url)
    try:
        anna = await ManagerRepository(db).save(
            login="anna", name="Anna", extensions=("101",), password=PASSWORD
        )
        issued = await ApiTokens(ApiTokenRepository(db)).issue(
            anna.id, "bench", frozenset({Scope.CALLS_READ}), None
        )
        server = TestServer(create_app(WebSettings(port=0), db=db, hub=Hub()), host="127.0.0.1", port=0)
        await server.start_server()
        try:
            base = str(server.make_url("/"))
            async with aiohttp.ClientSession(
                base_url=base, cookie_jar=aiohttp.CookieJar(unsafe=True)
            ) as page:
                async with page.post("/api/login", json={"login": "anna", "password": PASSWORD}) as r:
                    assert r.status == 200
                await _timed(page, 20, {})  # warm-up
                session = await _timed(page, args.requests, {})
            async with aiohttp.ClientSession(base_url=base) as integration:
                bearer = {"Authorization": f"Bearer {issued.secret}"}
                await _timed(integration, 20, bearer)
                token = await _timed(integration, args.requests, bearer)
        finally:
            await server.close()
        print(_line("session cookie (baseline)", session))
        print(_line("API token", token))
    finally:
        await db.dispose()


async def main_async(args: argparse.Namespace) -> int:
    samerun.report()
    if args.database_url:
        await run(args, args.database_url)
        return 0
    async with temp_sqlite("apitoken", args.smoke) as url:
        await run(args, url)
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument(
        "--database-url", help="a PostgreSQL URL (an empty database); default: SQLite in a temp folder"
    )
    smoke.add_smoke(parser, requests=30)
    return asyncio.run(main_async(smoke.parse(parser)))


if __name__ == "__main__":
    sys.exit(main())
