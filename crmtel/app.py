"""The composition root: builds every component from the settings and runs them until told to stop.

Order of start-up: database (migrated) -> call service (restores live calls) -> web app (websockets, APIs,
reports, ``/route``) -> FastAGI server -> one AMI client per PBX. Shutdown runs in reverse through one
``AsyncExitStack``; SIGTERM and SIGINT set the stop event, so systemd's stop is a clean stop.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import resource
import signal
import time
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import structlog
from aiohttp import web
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, SQLAlchemyError

from crmtel.ami.client import AmiClient
from crmtel.board.service import BoardService, BoardTap, StoreCounts
from crmtel.board.web import board_routes
from crmtel.callbacks.web import callback_routes
from crmtel.calls.service import CallService
from crmtel.calls.setup import build_call_service
from crmtel.cdr.service import CdrService, build_cdr_service
from crmtel.cluster.metrics import ClusterCollector
from crmtel.cluster.service import (
    CONTROL_CONNECTIONS,
    ClusterNode,
    check_connections,
    session_settings,
)
from crmtel.config import AmiSettings, Settings
from crmtel.connectors.rate import RateLimits
from crmtel.connectors.service import ConnectorService
from crmtel.connectors.sinks import build_sinks, connector_routes, offline_pollers, routing_lookup
from crmtel.crm.web import CrmApi, crm_routes
from crmtel.deals.web import deal_routes
from crmtel.demo import seed
from crmtel.demo.people import demo_book
from crmtel.dial.guard import GuardedSender
from crmtel.dial.service import DialService
from crmtel.dial.web import dial_routes, hub_notifier
from crmtel.errors import ConfigError, StoreUnavailable
from crmtel.fakepbx.simulator import Simulator
from crmtel.health.service import HealthCheck
from crmtel.health.web import health_routes
from crmtel.i18n.models import LocaleOptions
from crmtel.managers.models import MobilePolicy
from crmtel.managers.sync import mobile_sync
from crmtel.memory import freeze_startup_objects
from crmtel.metrics import ComponentCollector, MeteredNotifier, MeteredRouter, Metrics, metrics_routes
from crmtel.openapi.document import openapi_routes
from crmtel.push.cardcache import CachedCards, CardCache, follow_card_epoch
from crmtel.push.cards import CardSource, StoreCards
from crmtel.push.context import current_manager, translator
from crmtel.push.hub import Hub
from crmtel.push.notifier import ManagerNames, Notifier
from crmtel.push.web import create_app
from crmtel.reports.queries import QueryOptions, ReportQueries
from crmtel.reports.queue_queries import QueueQueries
from crmtel.reports.queue_web import queue_routes
from crmtel.reports.web import report_routes
from crmtel.results.models import ResultChoices
from crmtel.results.web import result_routes
from crmtel.routing.agi import AgiServer
from crmtel.routing.service import RoutingService
from crmtel.routing.web import route_handlers
from crmtel.store.call_callbacks import match_digits
from crmtel.store.call_results import CallResults
from crmtel.store.callbacks import CallbackRepository
from crmtel.store.crm_deals import CrmDeals
from crmtel.store.crm_lists import PartyLists
from crmtel.store.crm_merge import PartyMerger
from crmtel.store.crm_parties import PartyCards
from crmtel.store.crm_tasks import CrmTasks
from crmtel.store.crm_timeline import Timelines
from crmtel.store.db import Database, upgrade
from crmtel.store.dial_attempts import DialAttempts
from crmtel.store.history import CallHistory
from crmtel.store.managers import ManagerRepository
from crmtel.store.outbox import OutboxRepository
from crmtel.store.parties import PartyRepository
from crmtel.store.sip_credentials import SipCredentialRepository
from crmtel.store.watermarks import WatermarkRepository
from crmtel.systemd import ServiceManager
from crmtel.tasks.web import task_routes
from crmtel.webphone.web import webphone_dial_check, webphone_origins, webphone_routes

_log = structlog.get_logger("crmtel.app")


@dataclass(frozen=True, slots=True)
class Running:
    """What a started crmtel exposes (for the CLI's banner and for tests)."""

    web_url: str
    agi_port: int
    pbxes: tuple[AmiSettings, ...]
    hub: Hub
    calls: CallService
    clients: tuple[AmiClient, ...]
    # The web app as mounted (tests walk its routes).
    app: web.Application
    # Click-to-call (tests drive it directly).
    dial: DialService | None = None


@asynccontextmanager
async def _web(app: web.Application, host: str, port: int, header_timeout: float) -> AsyncIterator[str]:
    # aiohttp closes a connection whose request header is still incomplete when its keep-alive timer fires
    # (started at connect and after each answer): that timer is the header deadline.
    runner = web.AppRunner(app, access_log=None, keepalive_timeout=header_timeout)
    await runner.setup()
    try:
        site = web.TCPSite(runner, host, port)
        try:
            await site.start()
        except OSError as err:
            raise ConfigError(f"web: cannot listen on {host}:{port}: {err.strerror or err}") from err
        server = site._server
        sockets = getattr(server, "sockets", None) or ()
        bound = sockets[0].getsockname()[1] if sockets else port
        yield f"http://{host}:{bound}/"
    finally:
        await runner.cleanup()


def raise_open_file_limit() -> None:
    """Lift the soft limit on open files to the hard one (systemd's default soft limit is 1024): a flood of
    FastAGI or browser connections must not make accept() fail for everyone."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = hard if hard != resource.RLIM_INFINITY else 1 << 20
    if soft != resource.RLIM_INFINITY and soft < wanted:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (min(wanted, 1 << 20), hard))


async def migrate(url: str, revision: str = "head") -> None:
    """Create or upgrade the schema; a database that cannot be opened is a one-line StoreUnavailable."""
    parsed = make_url(url)
    if parsed.drivername.startswith("sqlite") and parsed.database not in (None, "", ":memory:"):
        # The usual deployment slip (/var/lib/crmtel not created); aiosqlite would also print a thread
        # traceback for it after the migration's event loop has closed.
        directory = Path(parsed.database).parent
        if not directory.is_dir():
            raise StoreUnavailable(f"cannot open the database: directory {directory} does not exist")
    try:
        await upgrade(url, revision)
    except (OSError, SQLAlchemyError) as err:
        reason = err.orig if isinstance(err, DBAPIError) and err.orig is not None else err
        raise StoreUnavailable(f"cannot open the database: {reason}") from err


@asynccontextmanager
async def start(settings: Settings, *, demo: bool = False, demo_speed: float = 1.0) -> AsyncIterator[Running]:
    """Start every component; leaving the context stops them in reverse order.

    ``demo`` seeds the demo data and runs the AMI simulator (``demo_speed`` times faster than real time).
    """
    async with AsyncExitStack() as stack:
        raise_open_file_limit()
        await migrate(settings.database_url)
        db = Database(
            settings.database_url,
            server_settings=session_settings(settings.cluster) if settings.cluster.enabled else None,
            # The nodes of a cluster share the server's connections: each keeps to its [cluster] pool.
            pool_size=settings.cluster.pool_size if settings.cluster.enabled else 10,
            max_overflow=settings.cluster.pool_overflow if settings.cluster.enabled else 20,
        )
        stack.push_async_callback(db.dispose)
        digits = settings.reports.callback_match_digits
        started = time.monotonic()
        if await match_digits(db, digits):
            # Every call's key anew: minutes on millions of calls, once after the setting changed.
            _log.info(
                "reports.callbacks_recomputed", digits=digits, seconds=round(time.monotonic() - started, 1)
            )
        cluster: ClusterNode | None = None
        # What a PBX's leadership and the node's health check need from the store, on a small pool of its own:
        # a burst of web requests (logins) can never make a leader wait for a connection and lose its lease.
        control = db
        if settings.cluster.enabled:
            control = Database(
                settings.database_url,
                server_settings=session_settings(settings.cluster),
                pool_size=CONTROL_CONNECTIONS // 2,
                max_overflow=CONTROL_CONNECTIONS // 2,
            )
            stack.push_async_callback(control.dispose)
            cluster = ClusterNode(settings.cluster, control)
            stack.push_async_callback(cluster.aclose)
            problem = await check_connections(control, settings.cluster, len(settings.pbxes))
            if problem is not None:
                _log.warning("cluster.connections_short", problem=problem)
        parties = PartyRepository(db, settings.region)
        managers = ManagerRepository(db)
        pbxes = settings.pbxes
        if demo:
            recordings = settings.web.recordings_dir
            if await seed(
                db, managers, parties, recordings_dir=recordings, timezone=settings.display_timezone
            ):
                _log.info("demo.seeded")
            simulator = Simulator(
                username=settings.ami.username,
                secret=settings.ami.secret.get_secret_value(),
                speed=demo_speed,
                recordings_dir=recordings,
                book=demo_book(),
            )
            await simulator.start("127.0.0.1", 0)
            stack.push_async_callback(simulator.close)
            pbxes = (settings.ami.model_copy(update={"host": "127.0.0.1", "port": simulator.port}),)

        hub = Hub(queue_size=settings.web.queue_size, queue_bytes=settings.web.queue_bytes)
        metrics = Metrics()
        # The ringing card from memory: every commit (this node's; in a cluster, any node's) forgets what it changed.
        card_cache = CardCache(settings.web.card_cache_size, max_age=settings.web.card_cache_seconds)
        db.on_change(card_cache.forget)
        cards: CardSource = StoreCards(db, region=settings.region)
        if settings.web.card_cache_size > 0:
            cards = CachedCards(cards, card_cache, region=settings.region)
        invalidations = cluster.card_invalidations(card_cache) if cluster is not None else None
        if invalidations is not None:
            card_cache.distrust()  # until this node hears the other nodes' changes
            db.on_change(invalidations.publish)
            db.number_changes()  # so a change committed but never announced is still found (EpochLedger)
        # Read once now, so that no popup waits on the store for who answered (reloaded beside, see ManagerNames).
        names = await stack.enter_async_context(ManagerNames(db))
        await names.load()
        notifier = await stack.enter_async_context(Notifier(hub, cards, names))
        report_zone = settings.reports.timezone or settings.routing.timezone
        board = await stack.enter_async_context(
            BoardService(
                hub,
                names,
                StoreCounts(db, QueryOptions.from_settings(settings.reports)),
                timezone=report_zone,
                queues=(
                    settings.routing.retail_queue,
                    settings.routing.wholesale_queue,
                    settings.routing.default_queue,
                ),
                region=settings.region,
            )
        )
        node_notifier = BoardTap(notifier, board)
        # The connectors' outbox: effects staged with the call rows, delivered by owned workers; each outside
        # system's rate limit is one bucket for the whole cluster (Redis), or this node's when alone.
        limits = (
            RateLimits(cluster.redis, prefix=settings.cluster.stream) if cluster is not None else RateLimits()
        )
        connectors = await stack.enter_async_context(
            ConnectorService(
                build_sinks(settings, db, limits),
                OutboxRepository(db),
                settings.outbox,
                node=settings.cluster.node() if cluster is not None else "local",
                limits=limits,
            )
        )
        calls = build_call_service(
            settings,
            db,
            pbxes,
            parties=parties,
            # In a cluster the leader's events go to every node's notifier (and board) through the stream.
            notifier=MeteredNotifier(cluster.publisher if cluster is not None else node_notifier, metrics),
            fence=cluster.fence if cluster is not None else None,
            after_flush=board.calls_stored,
            tap=connectors.tap if connectors.workers else None,
        )
        stack.push_async_callback(calls.aclose)  # after the stop's last writes (``_drain``, pushed later)
        # A manager added or changed while running (the CLI, the import, another node) reaches the classifier
        # the way it reaches the names and cards: through the store's change listeners.
        db.on_change(calls.extensions.changed)
        if invalidations is not None:  # and another node's, announced on the cluster's channel
            invalidations.also_tell(calls.extensions.changed)
        if cluster is None:  # a cluster node restores a PBX's live calls when it becomes its leader
            for pbx in pbxes:
                restored = await calls.restore(pbx.name)
                _log.info("calls.restored", pbx=pbx.name, live=restored)
        # The last resort of the stop (after the drain below): whatever is still pending, within the budget.
        stack.push_async_callback(calls.write_all)
        # Asterisk's CDR fills in what crmtel missed while it was away (calls.amender: resyncs ask it).
        cdr = build_cdr_service(
            calls, WatermarkRepository(db, fence=cluster.fence if cluster is not None else None), pbxes
        )
        calls.amender = cdr
        if cluster is not None:  # passes run per leadership term (``cdr.serve``); the sources close last
            stack.push_async_callback(cdr.close)

        sinks = [w.sink for w in connectors.workers]
        router = RoutingService(routing_lookup(parties, sinks, db), settings.routing, region=settings.region)
        stack.push_async_callback(router.close)
        metered = MeteredRouter(router, metrics)
        route_table = route_handlers(metered, settings.routing.http_token)
        queue_queries = QueueQueries(db, service_level_seconds=settings.reports.service_level_seconds)
        reports = report_routes(
            ReportQueries(db, QueryOptions.from_settings(settings.reports)),
            current_manager,
            managers,
            timezone=settings.reports.timezone or settings.routing.timezone,
            translate=translator,
            heatmaps=queue_queries.heatmap,
        )
        queue_report = queue_routes(
            queue_queries,
            current_manager,
            timezone=settings.reports.timezone or settings.routing.timezone,
            translate=translator,
        )
        locale = LocaleOptions(
            language=settings.i18n.language,
            timezone=settings.display_timezone,
            currency=settings.i18n.currency,
        )
        clients = tuple(AmiClient(pbx, calls) for pbx in pbxes)
        health = health_routes(HealthCheck(control, clients, cluster=cluster, outbox=connectors.backlogs))
        # Every Originate this node sends to a PBX — its own clicks and other nodes' relayed ones — passes the
        # PBX's click-to-call policy and window there (crmtel.dial.guard).
        guarded = {
            c.pbx: GuardedSender(
                c.pbx, c, c.settings.originate, trunks=c.settings.trunks, audit=DialAttempts(db)
            )
            for c in clients
        }
        dial = DialService(
            # In a cluster only a PBX's leader is logged in to it: other nodes send through the leader.
            guarded if cluster is None else cluster.senders(guarded),
            {pbx.name: pbx.originate for pbx in pbxes},
            region=settings.region,
            locator=calls.calls,
            notify=hub_notifier(hub),
            audit=DialAttempts(db),
        )
        stack.push_async_callback(dial.aclose)
        callbacks = callback_routes(CallbackRepository(db), managers)
        crm = crm_routes(
            CrmApi(
                lists=PartyLists(db),
                cards=PartyCards(db),
                merger=PartyMerger(db),
                timelines=Timelines(db),
                parties=parties,
                managers=managers,
                region=settings.region,
                recordings_dir=settings.web.recordings_dir,
                deals=settings.deals,
            )
        )
        deals = deal_routes(CrmDeals(db), managers, CallHistory(db), settings.deals, settings.region)
        tasks = task_routes(CrmTasks(db), managers, settings.region)
        results = result_routes(ResultChoices(settings.calls.results), CallResults(db))
        app = create_app(
            settings.web,
            db=db,
            hub=hub,
            region=settings.region,
            callback_due_minutes=settings.calls.callback_due_minutes,
            routes=(
                reports,
                queue_report,
                board_routes(board, current_manager, translator),
                dial_routes(dial),
                callbacks,
                crm,
                deals,
                tasks,
                results,
                webphone_routes(settings.webphone, SipCredentialRepository(db)),
            ),
            public_routes=(
                route_table,
                metrics_routes(metrics, settings.web.metrics_token),
                health,
                *connector_routes(sinks, db, dial),
                openapi_routes(),
            ),
            locale=locale,
            mobiles=MobilePolicy.of(settings),
            on_mobile=mobile_sync(settings, db),
            connect_src=webphone_origins(settings.webphone),
        )
        url = await stack.enter_async_context(
            _web(app, settings.web.host, settings.web.port, settings.web.header_timeout)
        )

        agi = AgiServer(
            metered,
            settings.routing.agi_host,
            settings.routing.agi_port,
            webphone_check=webphone_dial_check(settings, audit=DialAttempts(db)),
        )
        try:
            await agi.start()
        except OSError as err:
            where = f"{settings.routing.agi_host}:{settings.routing.agi_port}"
            raise ConfigError(f"FastAGI: cannot listen on {where}: {err.strerror or err}") from err
        stack.push_async_callback(agi.stop)

        metrics.watch(ComponentCollector(clients=clients, calls=calls, browsers=hub, agi=agi))
        if connectors.workers:
            metrics.watch(connectors)
        group = await stack.enter_async_context(_TaskOwner())
        for poller in offline_pollers(sinks, db, dial):
            group.spawn(poller.run(), name="bitrix24-offline-events")
        # Calls are written beside tracking: no AMI event, hence no popup, waits for a commit.
        group.spawn(calls.write_beside(), name="calls-writer")
        # Writes of other crmtel processes on this store (a CLI import, a manager renamed by `crmtel manager`).
        # In a cluster, also the other nodes' changes whose announcement was lost (a node killed after its commit).
        ledger = invalidations.ledger if invalidations is not None else None
        group.spawn(follow_card_epoch(db, ledger=ledger), name="card-epoch")
        if cluster is None:
            group.spawn(cdr.run(), name="cdr-backfill")
            for client in clients:
                group.spawn(client.run(), name=f"ami-{client.pbx}")
                if client.settings.reconcile_interval > 0:
                    group.spawn(
                        client.reconcile_every(client.settings.reconcile_interval),
                        name=f"ami-reconcile-{client.pbx}",
                    )
        else:
            # A PBX's CDR passes and reconcile run inside its leadership term, beside its client.
            for client in clients:
                group.spawn(
                    cluster.lead(client, calls, _pbx_work(client, cdr)).run(), name=f"lead-{client.pbx}"
                )
            metrics.watch(ClusterCollector(cluster))
            group.spawn(cluster.publisher.run(), name="cluster-publish")
            group.spawn(cluster.relay(guarded).run(), name="cluster-relay")
            group.spawn(cluster.consume(node_notifier, hub).run(), name="cluster-consume")
            if invalidations is not None:
                group.spawn(invalidations.run(), name="cluster-cards")
        # Runs first on the way out, while every task still runs: stop reading the PBXs, handle what was
        # received and write it all (retrying a locked store) before anything is cancelled.
        stack.push_async_callback(_drain, clients, calls, cluster)
        freeze_startup_objects()
        yield Running(url, agi.port, pbxes, hub, calls, clients, app, dial=dial)


# The exit status of a stop that could not write every call it received in its budget (EX_TEMPFAIL: the
# calls are logged, and the CDR backfill of the next start brings back the ended ones).
EXIT_UNWRITTEN = 75


def _pbx_work(client: AmiClient, cdr: CdrService) -> list[Callable[[], Coroutine[Any, Any, None]]]:
    """A PBX's work beside its AMI client (its CDR passes, its periodic reconcile), for its leadership terms."""
    work: list[Callable[[], Coroutine[Any, Any, None]]] = [functools.partial(cdr.serve, client.pbx)]
    if client.settings.reconcile_interval > 0:
        work.append(functools.partial(client.reconcile_every, client.settings.reconcile_interval))
    return work


async def _drain(clients: tuple[AmiClient, ...], calls: CallService, cluster: ClusterNode | None) -> None:
    """On stop: read no more from any PBX, track every event already received, write every call out.

    Everything here shares the stop's one deadline (``calls.begin_stop``: from SIGTERM when
    ``run_until_stopped`` got it, else from here), ``calls.stop_write_seconds`` long.
    """
    deadline = calls.begin_stop()
    if cluster is not None:
        # Each leading term ends once its client has stopped, after its last writes (within the budget).
        cluster.stop()
    try:
        # Each client's consumer writes as it goes; a store that stays locked is retried below.
        async with asyncio.timeout_at(deadline):
            await asyncio.gather(*(client.stop() for client in clients))
            if cluster is not None:
                await cluster.stopped()
    except TimeoutError:
        _log.warning(
            "stop.events_not_tracked", reason="the PBX clients did not finish within the stop budget"
        )
    # The stack's last ``calls.write_all`` reports what is left, once the writer task put its batch back.
    await calls.write_all(report=False)


class _TaskOwner:
    """Owns long-running tasks: a failing one is logged and the rest keep running; all are cancelled on exit."""

    def __init__(self) -> None:
        self._tasks: set[asyncio.Task[None]] = set()

    async def __aenter__(self) -> _TaskOwner:
        return self

    async def __aexit__(self, *_exc: object) -> None:
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        results = await asyncio.gather(*tasks, return_exceptions=True)
        # Pair each result with its own task: one ordered list, not two walks over a set.
        for task, result in zip(tasks, results, strict=True):
            if isinstance(result, BaseException) and not isinstance(result, asyncio.CancelledError):
                _log.error("task.failed", task=task.get_name(), error=repr(result))

    def spawn(self, coro: Coroutine[Any, Any, None], *, name: str) -> None:
        """Run ``coro`` as a named task owned by this object."""
        task = asyncio.get_running_loop().create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(_report_crash)


def _report_crash(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        _log.error("task.crashed", task=task.get_name(), error=repr(task.exception()))


def status_line(running: Running) -> str:
    """What ``systemctl status`` shows: PBXs logged in and calls in progress."""
    up = sum(1 for client in running.clients if client.connected.is_set())
    live = sum(len(state.calls) for state in running.calls.states.values())
    return f"PBX connected {up}/{len(running.clients)}, live calls {live}, browsers {running.hub.connections}"


async def run_until_stopped(
    settings: Settings,
    *,
    demo: bool = False,
    demo_speed: float = 1.0,
    on_ready: Callable[[Running], None] | None = None,
) -> bool:
    """Run crmtel until SIGTERM/SIGINT, then stop cleanly (telling systemd each step when it runs us).

    The stop's budget (``calls.stop_write_seconds``) counts from the signal. Returns whether every call
    received was written (False: the store did not take them in time; each is logged).
    """
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    systemd = ServiceManager()
    try:
        async with start(settings, demo=demo, demo_speed=demo_speed) as running, _TaskOwner() as tasks:
            # Here the database is migrated and the web and FastAGI sockets listen; AMI logs in meanwhile.
            _log.info("crmtel.started", web=running.web_url, agi_port=running.agi_port)
            systemd.ready(status_line(running))
            tasks.spawn(systemd.run(lambda: status_line(running)), name="systemd-notify")
            if on_ready is not None:
                on_ready(running)
            await stop.wait()
            running.calls.begin_stop()
            _log.info("crmtel.stopping", budget_seconds=settings.calls.stop_write_seconds)
            systemd.stopping()
        return running.calls.unwritten_at_stop == 0 and running.calls.pending == 0
    finally:
        systemd.close()
        for sig in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(NotImplementedError):
                loop.remove_signal_handler(sig)
