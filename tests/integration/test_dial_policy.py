"""Click-to-call abuse over HTTP and real AMI: premium and foreign numbers refused by default (and allowed when
the admin widens the patterns), a script's burst bounded at the PBX by the configured window, and a manager's
own window answered with a translated 429 and Retry-After."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from crmtel.store.db import Database
from crmtel.store.dial_attempts import DialAttempts
from tests.integration.test_dial_web import dial_app


async def test_premium_satellite_and_foreign_numbers_are_refused_by_default(db: Database) -> None:
    """403 with the reason in the manager's language; nothing reaches the PBX."""
    async with dial_app(db) as r, r.web.browser("boris") as boris:
        for number in ("8 809 505-12-34", "+882 1234 5678", "8 10 1 202 555 0123", "00", "112"):
            async with boris.post(
                "/api/dial", json={"number": number}, headers={"Accept-Language": "ru"}
            ) as resp:
                assert resp.status == 403, number
                body = await resp.json()
            assert body["key"] in ("dial.number_denied", "dial.number_not_allowed"), number
            assert "звонить нельзя" in body["error"]
        assert r.ami.originates == []


async def test_an_admin_allows_a_country_and_it_is_dialled(db: Database) -> None:
    """With "+44*" allowed, a UK number is originated (dialled as written: no rule for +44)."""
    async with dial_app(db, allow=("+7[3489]?????????", "+44*")) as r, r.web.browser("boris") as boris:
        async with boris.post("/api/dial", json={"number": "+44 20 7946 0000"}) as resp:
            assert resp.status == 202, await resp.text()
        await r.dial.idle()
        assert [m.get("Exten") for m in r.ami.originates] == ["+442079460000"]
        async with boris.post("/api/dial", json={"number": "8 809 505-12-34"}) as resp:
            assert resp.status == 403


async def test_a_burst_of_300_clicks_reaches_the_pbx_at_most_at_the_configured_rate(db: Database) -> None:
    """300 different numbers clicked as fast as HTTP goes: max_per_pbx Originates, the rest 429."""
    async with dial_app(db, max_per_manager=1000, max_per_pbx=20) as r, r.web.browser("boris") as boris:
        statuses: list[int] = []
        for i in range(300):
            async with boris.post("/api/dial", json={"number": f"+7916{i:07d}"}) as resp:
                statuses.append(resp.status)
                if resp.status == 429:
                    body = await resp.json()
                    assert body["key"] == "dial.rate_pbx"
                    assert int(resp.headers["Retry-After"]) == body["retry_after"] >= 1
        await r.dial.idle()
        assert statuses.count(202) == 20
        assert statuses.count(429) == 280
        assert len(r.ami.originates) == 20


async def test_a_manager_past_their_window_gets_a_translated_429_and_others_still_call(db: Database) -> None:
    """The same failing number clicked again and again counts every attempt: the 4th is refused for Boris
    (the PBX's window still has room for Anna)."""
    async with (
        dial_app(db, max_per_manager=3, dedup_seconds=0) as r,
        r.web.browser("boris") as boris,
        r.web.browser("anna") as anna,
    ):
        r.ami.originate_outcome = "busy"  # a failed attempt is no reason to let it dial again at once
        for _ in range(3):
            async with boris.post("/api/dial", json={"number": "+79031234567"}) as resp:
                assert resp.status == 202
            await r.dial.idle()
        async with boris.post(
            "/api/dial", json={"number": "+79031234567"}, headers={"Accept-Language": "en"}
        ) as resp:
            assert resp.status == 429
            body = await resp.json()
            assert body["key"] == "dial.rate_manager"
            assert body["error"].startswith("Too many calls in a row")
            assert 1 <= int(resp.headers["Retry-After"]) <= 60
        async with anna.post("/api/dial", json={"number": "+79031234567"}) as resp:
            assert resp.status == 202
        await r.dial.idle()
        assert len(r.ami.originates) == 4


async def test_every_click_placed_or_refused_is_in_the_audit_log(db: Database) -> None:
    """Who called what from which phone: Boris's premium number refused (with the pattern that refused it),
    his call to a client placed and finished as answered."""
    async with dial_app(db) as r, r.web.browser("boris") as boris:
        async with boris.post("/api/dial", json={"number": "8 809 505-12-34"}) as resp:
            assert resp.status == 403
        async with boris.post("/api/dial", json={"number": "+7 903 123-45-67"}) as resp:
            assert resp.status == 202
            placed = await resp.json()
        await r.dial.idle()
    logged = await DialAttempts(db).between(datetime.now(UTC) - timedelta(hours=1))
    assert [
        (a.manager_login, a.source, a.extension, a.number, a.decision, a.reason, a.status) for a in logged
    ] == [
        ("boris", "web", "102", "+79031234567", "placed", None, "answered"),
        ("boris", "web", "102", "+78095051234", "refused", "dial.number_denied", None),
    ]
    assert logged[0].originate_id == placed["originate_id"]
    assert logged[0].dialled == "89031234567"
    assert logged[1].detail == "+7809*"
    assert logged[0].manager_id == r.web.managers["boris"].id
