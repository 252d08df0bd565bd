"""The language over real HTTP: the public catalogue, /api/me's locale, and a stored choice that wins."""

from __future__ import annotations

from crmtel.store.db import Database
from crmtel.store.managers import ManagerRepository
from tests.fixtures.csrf import page_like_session
from tests.integration.test_web_app import PASSWORD, running_app


async def test_catalogue_is_public_cacheable_and_merged(db: Database) -> None:
    """GET /i18n/ru.json needs no session, carries keys of every feature file, and revalidates by ETag."""
    async with running_app(db) as rig, page_like_session(base_url=rig.base) as http:
        async with http.get("/i18n/ru.json") as r:
            assert r.status == 200
            assert r.content_type == "application/json"
            assert "public" in r.headers["Cache-Control"]
            etag = r.headers["ETag"]
            ru = await r.json()
        assert ru["format.duration_ms"] == "{minutes} мин {seconds} с"
        assert ru["messages.login_wrong"] == "Неверный логин или пароль"
        assert ru["report.chart_row_calls"]["few"] == "{name}: {count} звонка"
        async with http.get("/i18n/en.json") as r:
            en = await r.json()
        assert set(en) == set(ru)
        assert en["messages.login_wrong"] == "Wrong login or password"
        async with http.get("/i18n/ru.json", headers={"If-None-Match": etag}) as r:
            assert r.status == 304
        async with http.get("/i18n/xx.json") as r:
            assert r.status == 404
        async with http.get("/i18n/..%2F..%2Fetc%2Fpasswd.json") as r:
            assert r.status == 404


async def test_me_negotiates_from_the_browser_until_a_choice_is_stored(db: Database) -> None:
    """Accept-Language is the first guess; PUT /api/me/locale wins over it, survives a new login, null resets."""
    async with running_app(db) as rig, rig.browser("anna") as anna:
        english = {"Accept-Language": "en-US,en;q=0.9"}
        async with anna.get("/api/me", headers=english) as r:
            me = await r.json()
        assert me["locale"] == "en"
        assert me["locale_choice"] is None
        assert me["timezone"] == "Europe/Moscow"
        assert me["currency"] == "RUB"
        assert me["languages"] == ["ru", "en"]
        async with anna.get("/api/me", headers={"Accept-Language": "de-DE,fr;q=0.5"}) as r:
            assert (await r.json())["locale"] == "ru"

        async with anna.put("/api/me/locale", json={"locale": "ru"}, headers=english) as r:
            assert r.status == 200
            assert (await r.json())["locale"] == "ru"
        async with rig.browser("anna") as again, again.get("/api/me", headers=english) as r:
            me = await r.json()
        assert (me["locale"], me["locale_choice"]) == ("ru", "ru")

        async with anna.put("/api/me/locale", json={"locale": None}, headers=english) as r:
            assert (await r.json())["locale"] == "en"
        async with anna.get("/api/me", headers=english) as r:
            assert (await r.json())["locale_choice"] is None


async def test_a_bad_locale_choice_is_a_clear_400_and_needs_a_session(db: Database) -> None:
    """Unknown languages, non-strings and anonymous callers are refused; nothing is stored."""
    async with running_app(db) as rig, rig.browser("boris") as boris:
        for bad in ("xx", 5, ["en"], "e" * 5000):
            async with boris.put("/api/me/locale", json={"locale": bad}) as r:
                assert r.status == 400, bad
                assert "error" in await r.json()
        async with boris.put("/api/me/locale", data="en", headers={"Content-Type": "text/plain"}) as r:
            assert r.status == 415
        async with (
            page_like_session(base_url=rig.base) as anonymous,
            anonymous.put("/api/me/locale", json={"locale": "en"}) as r,
        ):
            assert r.status == 401
        stored = await ManagerRepository(db).by_login("boris")
        assert stored is not None
        assert stored.locale is None


async def test_the_login_answer_carries_the_same_locale_fields_as_me(db: Database) -> None:
    """Right after logging in the page knows its language, zone and currency (no extra round trip)."""
    async with running_app(db) as rig, rig.browser() as browser:
        async with browser.post(
            "/api/login", json={"login": "vera", "password": PASSWORD}, headers={"Accept-Language": "en"}
        ) as r:
            me = await r.json()
        assert (me["login"], me["locale"], me["timezone"], me["currency"]) == (
            "vera",
            "en",
            "Europe/Moscow",
            "RUB",
        )
