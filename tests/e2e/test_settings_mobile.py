"""The manager's settings page in headless Chromium (ru-RU, 390 and 1366 px): their own mobile checked by the
server (a toll-free number refused in Russian, next to the field), saved as E.164, axe-clean; then «Через мой
мобильный» on a search hit sends the Originate that rings the mobile (Local/<ext>@crmtel-mobile)."""

from __future__ import annotations

import pytest
from playwright.async_api import Browser, Page, expect

from crmtel.dial.guard import dialled_number
from crmtel.store.db import Database
from crmtel.store.managers import ManagerRepository
from tests.e2e.pagecheck import axe_violations
from tests.e2e.test_click_to_call import Rig, rig
from tests.e2e.test_popup_calls import SEEN
from tests.fixtures.fake_ami import wait_until
from tests.fixtures.races import RACES_PROCESSES
from tests.integration.test_web_app import PASSWORD

pytestmark = [pytest.mark.e2e, RACES_PROCESSES]


async def _page(r: Rig, login: str, width: int) -> Page:
    context = await r.browser.new_context(locale="ru-RU", viewport={"width": width, "height": 900})
    page = await context.new_page()
    await page.goto(str(r.web.make_url("/")))
    await page.fill("#login-name", login)
    await page.fill("#login-password", PASSWORD)
    await page.click("#login-submit")
    await expect(page.locator("#conn")).to_have_text("на связи", timeout=SEEN)
    return page


@pytest.mark.parametrize("width", [390, 1366])
async def test_my_mobile_is_checked_saved_and_rings_first(
    db: Database, browser: Browser, traces_dir: object, width: int
) -> None:
    """Anna refuses nothing by accident: 8 800 is refused with the reason in Russian (the field marked invalid),
    her mobile is saved as +7 916 111-00-01, the form has no serious axe violation and fits the screen; the
    «via my mobile» button appears on the client she finds and rings her mobile first."""
    async with rig(db, browser, traces_dir) as r:
        r.ami.originate_outcome = "no-answer"
        anna = await _page(r, "anna", width)
        await anna.click("[data-testid=nav-settings]")
        form = anna.locator("[data-testid=settings-form]")
        await expect(form).to_be_visible()
        await expect(form.locator("[data-testid=mobile-current]")).to_have_text("Мобильный не указан")
        save = await form.locator("[data-testid=mobile-save]").bounding_box()
        clear = await form.locator("[data-testid=mobile-clear]").bounding_box()
        assert save is not None
        assert clear is not None
        # «Сохранить» and «Убрать номер» side by side stand apart (they touched).
        assert clear["y"] >= save["y"] + save["height"] or clear["x"] >= save["x"] + save["width"] + 4, (
            save,
            clear,
        )

        await anna.fill("[data-testid=mobile-input]", "8 800 555-35-35")
        await anna.click("[data-testid=mobile-save]")
        error = anna.locator("[data-testid=mobile-error]")
        await expect(error).to_contain_text("служебный номер", timeout=SEEN)
        await expect(anna.locator("[data-testid=mobile-input]")).to_have_attribute("aria-invalid", "true")
        stored = await ManagerRepository(db).by_login("anna")
        assert stored is not None
        assert stored.mobile is None

        await anna.fill("[data-testid=mobile-input]", "8 (916) 111-00-01")
        await anna.click("[data-testid=mobile-save]")
        await expect(form.locator("[data-testid=mobile-current]")).to_have_text(
            "Сейчас: +7 916 111-00-01", timeout=SEEN
        )
        await expect(error).to_have_text("")
        stored = await ManagerRepository(db).by_login("anna")
        assert stored is not None
        assert stored.mobile == "+79161110001"
        assert await axe_violations(anna, "#view-settings") == []
        assert await anna.evaluate("document.documentElement.scrollWidth") <= width

        await anna.click("a[data-view=callbacks]")
        await anna.fill("[data-testid=search-input]", "Romashka")
        hit = anna.locator("[data-testid=search-hit]")
        await expect(hit).to_have_count(1, timeout=SEEN)
        via = hit.locator("[data-testid=dial-mobile-button]")
        await expect(via).to_be_visible()
        await expect(via).to_contain_text("Через мой мобильный")
        await via.click()

        async def originated() -> bool:
            return bool(r.ami.originates)

        await wait_until(originated)
        (sent,) = r.ami.originates
        assert (sent.get("Channel"), sent.get("Exten")) == ("Local/101@crmtel-mobile", "89031234567")
        fields = [(k, v) for k, v in sent.headers]
        assert dialled_number(fields) == "+79031234567"
        assert ("Variable", "CRMTEL_MOBILE=89161110001") in fields or any(
            "CRMTEL_MOBILE=89161110001" in v for k, v in fields if k == "Variable"
        )
        status = anna.locator("[data-testid=dial-status]")
        await expect(status).to_contain_text("мобильный", timeout=SEEN)
