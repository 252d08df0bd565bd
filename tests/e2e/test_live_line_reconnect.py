"""The page's websocket through a network that fails the ways networks do, with crmtel itself running on: the
connection cut (the network dropped, the browser offline meanwhile) and a socket that goes silent (frames stop
both ways, the TCP connection still open). Each time the page notices, reconnects by itself and gets the current
state — here the call that started ringing while it was cut off (ru-RU, desk and phone)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from playwright.async_api import Browser, BrowserContext, Page, expect

from crmtel.fakepbx.server import StreamItem, load_ami
from crmtel.store.db import Database
from tests.e2e.test_live_line import INBOUND_ID, VIEWPORTS, Line, line, replaying
from tests.e2e.test_popup_calls import index_of
from tests.fixtures.fake_ami import wait_for
from tests.fixtures.races import RACES_PROCESSES
from tests.integration.test_web_app import PASSWORD

pytestmark = [pytest.mark.e2e, RACES_PROCESSES]

SEEN = 5_000  # ms the browser may take to show a change
NOTICE = 60_000  # ms a page may take to notice a silent socket (2 heartbeats + 10 s) and reconnect
HEARTBEAT = 1.0  # s: [web] heartbeat, which the page's silence clock follows


@dataclass(eq=False)
class Pair:
    """One browser connection through the proxy and its connection to crmtel."""

    websocket: bool = False
    frozen: bool = False
    writers: list[asyncio.StreamWriter] = field(default_factory=list)


class Proxy:
    """A TCP relay between the browser and crmtel that can cut its connections or silence the websockets."""

    def __init__(self, target: int) -> None:
        self._target = target
        self.pairs: list[Pair] = []
        self._tasks: set[asyncio.Task[None]] = set()
        self._server: asyncio.Server | None = None
        self.port = 0

    async def __aenter__(self) -> Proxy:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *_exc: object) -> None:
        assert self._server is not None
        self._server.close()
        self.cut()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"

    @property
    def websockets(self) -> int:
        """How many websocket connections the browser opened through the proxy so far."""
        return sum(1 for p in self.pairs if p.websocket)

    def cut(self) -> None:
        """The network drops: every connection is reset."""
        for pair in self.pairs:
            for writer in pair.writers:
                writer.transport.abort()

    def freeze(self) -> None:
        """The open websockets go silent: nothing passes either way, the connections stay open."""
        for pair in self.pairs:
            pair.frozen = pair.frozen or pair.websocket

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self._target)
        pair = Pair(writers=[writer, up_writer])
        self.pairs.append(pair)
        for source, sink, first in ((reader, up_writer, True), (up_reader, writer, False)):
            task = asyncio.create_task(self._pump(pair, source, sink, first), name="test-proxy-pump")
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _pump(
        self, pair: Pair, source: asyncio.StreamReader, sink: asyncio.StreamWriter, from_browser: bool
    ) -> None:
        with contextlib.suppress(ConnectionError, OSError):
            while chunk := await source.read(65536):
                if from_browser and not pair.websocket and chunk.startswith(b"GET /ws"):
                    pair.websocket = True
                if pair.frozen:
                    continue
                sink.write(chunk)
                await sink.drain()
        if not pair.frozen:
            # A silent socket stays open whatever crmtel does with its end (it closes it after its heartbeat).
            sink.transport.abort()


@contextlib.asynccontextmanager
async def proxied_line(db: Database, browser: Browser) -> AsyncIterator[tuple[Line, Proxy]]:
    async with line(db, browser, heartbeat=HEARTBEAT) as live, Proxy(live.port) as proxy:
        yield live, proxy


async def anna_page(browser: Browser, url: str, viewport: tuple[int, int]) -> tuple[BrowserContext, Page]:
    width, height = viewport
    context = await browser.new_context(
        locale="ru-RU", timezone_id="Europe/Moscow", viewport={"width": width, "height": height}
    )
    page = await context.new_page()
    await page.goto(url)
    await page.fill("#login-name", "anna")
    await page.fill("#login-password", PASSWORD)
    await page.click("#login-submit")
    await expect(page.locator("#conn")).to_have_text("на связи", timeout=SEEN)
    return context, page


def ringing_stream(traces_dir: Path) -> tuple[list[StreamItem], int]:
    """A call to Anna's 101 (direct-answered), to be paused while it rings."""
    stream: list[StreamItem] = list(load_ami(traces_dir / "direct-answered.ami"))
    return stream, index_of(stream, "DialEnd", DialStatus="ANSWER")


@pytest.mark.parametrize("viewport", VIEWPORTS)
async def test_a_network_drop_while_offline_reconnects_when_back_and_brings_the_call_that_rang_meanwhile(
    db: Database, browser: Browser, traces_dir: Path, viewport: tuple[int, int]
) -> None:
    """The browser goes offline and its connections drop; a call rings for Anna meanwhile. The status line says
    the link is down as soon as the browser is offline; back online, the page reconnects without a reload and
    shows the ringing call's card."""
    async with proxied_line(db, browser) as (live, proxy):
        context, anna = await anna_page(browser, proxy.url, viewport)
        await context.set_offline(True)
        # The browser says it is offline (the relay still carries the socket): the status line says so at once,
        # not when the silence clock runs out.
        await expect(anna.locator("#conn")).to_have_text("нет связи — переподключимся сами")
        proxy.cut()
        stream, answered = ringing_stream(traces_dir)
        assert live.service is not None
        async with replaying(
            live.service, stream, pause_after=answered, answered_ago=0.0, answer_at=answered
        ):
            await wait_for(lambda: live.hub.live.get(INBOUND_ID) is not None, limit=30)
            await expect(anna.locator("#conn")).not_to_have_text("на связи")
            await context.set_offline(False)
            await expect(anna.locator("#conn")).to_have_text("на связи", timeout=SEEN * 4)
            card = anna.locator(f"[data-call-id='{INBOUND_ID}']")
            await expect(card.get_by_test_id("card-status")).to_have_text("Звонит на 101", timeout=SEEN)
        assert proxy.websockets >= 2
        await context.close()


@pytest.mark.parametrize("viewport", VIEWPORTS)
async def test_a_silent_socket_is_noticed_replaced_and_the_call_that_rang_meanwhile_shown(
    db: Database, browser: Browser, traces_dir: Path, viewport: tuple[int, int]
) -> None:
    """Anna's websocket goes silent (no pong, no frame; the TCP connection stays open), and a call rings for her
    that it never carries. The page notices the silence by its keep-alive, opens a new socket by itself and shows
    the ringing call's card."""
    async with proxied_line(db, browser) as (live, proxy):
        context, anna = await anna_page(browser, proxy.url, viewport)
        proxy.freeze()
        stream, answered = ringing_stream(traces_dir)
        assert live.service is not None
        async with replaying(
            live.service, stream, pause_after=answered, answered_ago=0.0, answer_at=answered
        ):
            card = anna.locator(f"[data-call-id='{INBOUND_ID}']")
            await expect(card.get_by_test_id("card-status")).to_have_text("Звонит на 101", timeout=NOTICE)
            await expect(anna.locator("#conn")).to_have_text("на связи")
        assert proxy.websockets >= 2
        await context.close()
