"""One live rig: a private Asterisk, the test's AMI witness, sipp endpoints and ``crmtel run`` on its own database.

``live_rig()`` builds and tears it down; the rig places real calls and finds what the PBX and crmtel made of them.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import secrets
import socket
import sys
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from tests.fixtures.daemon import Daemon, DaemonPool, child_env, free_ports
from tests.live import crmtel_side
from tests.live.asterisk import (
    PHONES_IP,
    TRUNK_HTTP_IP,
    TRUNK_IP,
    Asterisk,
    Install,
    PbxConfig,
    Phone,
    Ports,
    Queue,
    write_configs,
)
from tests.live.cdr import CdrRow, read_master_csv
from tests.live.children import die_with_parent, track
from tests.live.crmtel_side import Customer, Staff
from tests.live.sipp import Behaviour, Caller, SippProcess, caller_scenario, endpoint_scenario, spawn_sipp
from tests.live.witness import AmiMessage, Witness

PBX_NAME = "pbx1"
WEBPHONE_FILE = "pjsip_crmtel_webphone.conf"
MOBILES_FILE = "extensions_crmtel_mobiles.conf"


def free_udp_ports(count: int) -> list[int]:
    """``count`` distinct UDP ports nobody has bound on the loopback right now."""
    socks = [socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in range(count)]
    try:
        for sock in socks:
            sock.bind(("127.0.0.1", 0))
        return [int(sock.getsockname()[1]) for sock in socks]
    finally:
        for sock in socks:
            sock.close()


@dataclass(frozen=True, slots=True)
class RigSpec:
    """What a rig's PBX and crmtel hold: staff (each with a desk phone), extra phones, queues, CRM clients,
    per-DID default queues."""

    staff: tuple[Staff, ...]
    queues: tuple[Queue, ...] = ()
    customers: tuple[Customer, ...] = ()
    dids: Mapping[str, str] = field(default_factory=dict)
    default_queue: str = "retail"
    queue_owners: Mapping[str, str] = field(default_factory=dict)
    default_owner: str | None = None
    extra_phones: tuple[Phone, ...] = ()
    # Staff extensions whose phone is not registered (an endpoint with no contact).
    unregistered: frozenset[str] = frozenset()
    # Browser phones (99<ext> for every staff member) on a ws:// transport of the PBX.
    webphone: bool = False
    # crmtel's [mobile] settings, and the number called parties see ([ami.originate] outgoing_callerid).
    mobile: Mapping[str, object] = field(default_factory=dict)
    outgoing_callerid: str | None = None

    @property
    def phones(self) -> tuple[Phone, ...]:
        """Every desk phone of the PBX."""
        staff = tuple(Phone(s.extension, s.name, s.extension not in self.unregistered) for s in self.staff)
        return staff + self.extra_phones


@dataclass
class Placed:
    """A call an outside caller (or a desk phone) placed."""

    caller: Caller
    via: str
    sipp: SippProcess
    invite_at: float  # time.time() just before sipp was started (its INVITE follows within milliseconds)
    witness_index: int  # where the witness stream stood when it was placed


@dataclass
class LiveRig:
    """A running rig (see ``live_rig``)."""

    spec: RigSpec
    folder: Path
    install: Install
    cfg: PbxConfig
    pbx: Asterisk
    witness: Witness
    database_url: str
    config_path: Path
    web_port: int
    agi_port: int
    pool: DaemonPool
    daemon: Daemon | None = None
    phones: SippProcess | None = None
    world: SippProcess | None = None
    callers: list[SippProcess] = field(default_factory=list)
    witnesses: list[Witness] = field(default_factory=list)
    _sipp_count: int = 0

    @property
    def web_url(self) -> str:
        """crmtel's web app."""
        return f"http://127.0.0.1:{self.web_port}"

    @property
    def sip_target(self) -> str:
        """The PBX's SIP address."""
        return f"127.0.0.1:{self.cfg.ports.sip}"

    # --- crmtel ---------------------------------------------------------------------------------------

    async def start_crmtel(self) -> Daemon:
        """``crmtel run`` with the rig's config; returns once it is healthy (PBX logged in)."""
        self.daemon = self.pool.spawn(
            "--config", str(self.config_path), "run", name=f"crmtel-{len(self.pool.started) + 1}"
        )
        track(self.daemon.proc)
        await self.daemon.wait_http(self.web_url + "/healthz", limit=60.0)
        return self.daemon

    async def crmtel_cli(self, *args: str, limit: float = 120.0) -> tuple[int, str]:
        """A one-shot ``crmtel --config FILE ARGS`` (as an admin runs it next to the daemon): exit code, output."""
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "crmtel.cli",
            "--config",
            str(self.config_path),
            *args,
            cwd=self.folder,
            env=child_env(),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        out, _ = await asyncio.wait_for(proc.communicate(), limit)
        assert proc.returncode is not None
        return proc.returncode, out.decode(errors="replace")

    # --- the PBX --------------------------------------------------------------------------------------

    async def restart_pbx(self, *, kill: bool = False, down_for: float = 0.0) -> None:
        """Stop (or SIGKILL) the PBX and start it again with the same configs ``down_for`` seconds later;
        a new witness session."""
        if kill:
            self.pbx.kill9()
        else:
            await asyncio.to_thread(self.pbx.stop)
        await self.witness.close()
        if down_for:
            # The outage itself (not a wait for a condition): the PBX stays away this long.
            await asyncio.sleep(down_for)
        self.pbx.start()
        self.witness = await _witness(self.cfg)
        self.witnesses.append(self.witness)

    # --- sipp endpoints -------------------------------------------------------------------------------

    def _name(self, what: str) -> str:
        self._sipp_count += 1
        return f"sipp-{self._sipp_count:02d}-{what}"

    async def set_phones(self, behaviours: Mapping[str, Behaviour]) -> None:
        """(Re)start the sipp process playing the desk phones with these behaviours."""
        if self.phones is not None:
            await self.phones.stop()
        self.phones = await spawn_sipp(
            self.install,
            self.folder,
            self._name("phones"),
            endpoint_scenario(behaviours, self.sip_target, "desk phones"),
            bind_ip=PHONES_IP,
            port=self.cfg.ports.phones,
            media_port=media_port(),
        )
        await _sipp_listening(self.phones)

    async def set_world(self, behaviours: Mapping[str, Behaviour]) -> None:
        """(Re)start the sipp process playing the numbers behind the trunk (customers, mobiles)."""
        if self.world is not None:
            await self.world.stop()
        self.world = await spawn_sipp(
            self.install,
            self.folder,
            self._name("world"),
            endpoint_scenario(behaviours, self.sip_target, "outside world"),
            bind_ip=TRUNK_IP,
            port=self.cfg.ports.trunk,
            media_port=media_port(),
        )
        await _sipp_listening(self.world)

    async def place(self, caller: Caller, *, via: str = "trunk") -> Placed:
        """A call from ``caller``: from the trunk (``via`` "trunk" or "trunk-http") or from a desk phone ("phone")."""
        bind = {"trunk": TRUNK_IP, "trunk-http": TRUNK_HTTP_IP, "phone": PHONES_IP}[via]
        index = len(self.witness.messages)
        at = time.time()
        proc = await spawn_sipp(
            self.install,
            self.folder,
            self._name(f"call-{caller.number}"),
            caller_scenario(caller),
            bind_ip=bind,
            port=free_udp_ports(1)[0],
            media_port=media_port(),
            remote=self.sip_target,
            calls=1,
        )
        self.callers.append(proc)
        return Placed(caller, via, proc, at, index)

    async def inbound_linkedid(self, placed: Placed, limit: float = 20.0) -> str:
        """The Linkedid of the call ``placed`` made: its first channel on the PBX (Exten = the number dialled)."""
        prefix = {"trunk": "PJSIP/trunk-", "trunk-http": "PJSIP/trunk-http-"}.get(
            placed.via, f"PJSIP/{placed.caller.number}-"
        )
        message = await self.witness.wait_for(
            lambda m: (
                m.event == "Newchannel"
                and (m.get("Exten") or "").lstrip("+") == placed.caller.did.lstrip("+")
                and (m.get("Channel") or "").startswith(prefix)
            ),
            limit,
            placed.witness_index,
        )
        return message["Linkedid"]

    def cdr(self, linkedid: str) -> list[CdrRow]:
        """Master.csv's rows for one call."""
        return [row for row in read_master_csv(self.cfg.master_csv) if row.linkedid == linkedid]

    async def wait_cdr(self, linkedid: str, legs: int = 1, limit: float = 20.0) -> list[CdrRow]:
        """Master.csv's rows for one call once at least ``legs`` are written (cdr_csv writes at each leg's end)."""
        deadline = time.monotonic() + limit
        while len(rows := self.cdr(linkedid)) < legs:
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"Master.csv has {len(rows)} rows of {linkedid} after {limit} s, not {legs}"
                )
            await asyncio.sleep(0.2)
        return rows

    def events_of(self, linkedid: str) -> list[AmiMessage]:
        """The witness's events of one call, every PBX run (also transfers: TransfereeLinkedid, …)."""
        return [
            m
            for w in self.witnesses
            for m in w.messages
            if any(k.endswith("Linkedid") and v == linkedid for k, v in m.headers)
        ]

    async def stored_live(self, linkedid: str, limit: float = 30.0) -> crmtel_side.CallRecord:
        """crmtel's record of a call, live or ended, once it has written one."""
        deadline = time.monotonic() + limit
        while (record := await crmtel_side.stored_call(self.database_url, PBX_NAME, linkedid)) is None:
            if time.monotonic() > deadline:
                raise AssertionError(f"crmtel wrote no record of {linkedid} within {limit} s")
            await asyncio.sleep(0.1)
        return record

    async def stored(self, linkedid: str, limit: float = 30.0) -> crmtel_side.CallRecord:
        """crmtel's record of an ended call."""
        return await crmtel_side.wait_stored(self.database_url, PBX_NAME, linkedid, limit)


def media_port() -> int:
    """A free even port for a sipp's media (it binds the next ones too)."""
    # sipp binds its media port (and the next ones): an even free port well apart from others.
    for _ in range(50):
        port = random.randrange(20000, 60000, 4)
        socks: list[socket.socket] = []
        try:
            for offset in range(4):
                s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                socks.append(s)
                s.bind(("127.0.0.1", port + offset))
            return port
        except OSError:
            continue
        finally:
            for s in socks:
                s.close()
    raise AssertionError("no free media ports")


async def _sipp_listening(proc: SippProcess, limit: float = 10.0) -> None:
    # sipp binds its socket within milliseconds of starting; a bind failure ends it at once.
    await asyncio.sleep(0.2)
    if proc.proc.returncode is not None:
        raise AssertionError(f"sipp {proc.name} exited at start\n{proc.logs()}")


async def _witness(cfg: PbxConfig) -> Witness:
    witness = Witness("127.0.0.1", cfg.ports.ami, "live-recorder", cfg.recorder_secret)
    await witness.connect(limit=60.0)
    await witness.wait_event("FullyBooted", limit=60.0)
    return witness


async def dialplan_globals(config_path: Path, folder: Path) -> str:
    """``crmtel --config FILE config dialplan-globals``: the admin's way to make extensions_crmtel_globals.conf."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "crmtel.cli",
        "--config",
        str(config_path),
        "config",
        "dialplan-globals",
        cwd=folder,
        env=child_env(),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 0, err.decode(errors="replace")
    return out.decode()


async def webphone_endpoints(config_path: Path, folder: Path) -> None:
    """``crmtel config webphone-endpoints``: the admin's way to write the browser phones' PJSIP endpoints."""
    await config_command(config_path, folder, "webphone-endpoints")


async def config_command(config_path: Path, folder: Path, *args: str) -> None:
    """``crmtel --config FILE config ARGS`` (an admin's one-off), which must succeed."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "crmtel.cli",
        "--config",
        str(config_path),
        "config",
        *args,
        cwd=folder,
        env=child_env(),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 0, (out + err).decode(errors="replace")


@contextlib.asynccontextmanager
async def live_rig(
    install: Install, folder: Path, database_url: str, spec: RigSpec, *, start_crmtel: bool = True
) -> AsyncIterator[LiveRig]:
    """Build, start and finally tear down a rig (every process it started is stopped, by pid)."""
    await asyncio.to_thread(folder.mkdir, parents=True, exist_ok=True)
    ami, http, web, agi = free_ports(4)
    sip, phones, trunk = free_udp_ports(3)
    ports = Ports(
        ami=ami, sip=sip, http=http, phones=phones, trunk=trunk, rtp_start=random.randrange(20000, 59000, 200)
    )
    ami_secret = secrets.token_hex(12)
    pbx_root = folder / "pbx"
    config_path = crmtel_side.crmtel_config(
        folder / "crmtel.toml",
        database_url=database_url,
        ami_port=ami,
        ami_secret=ami_secret,
        web_port=web,
        agi_port=agi,
        master_csv=pbx_root / "log" / "cdr-csv" / "Master.csv",
        recordings_dir=pbx_root / "spool" / "monitor",
        default_queue=spec.default_queue,
        dids=spec.dids,
        queue_owners=spec.queue_owners,
        default_owner=spec.default_owner,
        webphone=(f"ws://127.0.0.1:{http}/ws", pbx_root / "etc" / WEBPHONE_FILE) if spec.webphone else None,
        # Follow-me's mobiles in their own globals file, rewritten by crmtel on every change (the admin's
        # setup: deploy/asterisk/README.md); the test reloads the dialplan as crmtel-mobiles.path would.
        mobile={**spec.mobile, "globals_file": str(pbx_root / "etc" / MOBILES_FILE)},
        outgoing_callerid=spec.outgoing_callerid,
    )
    globals_text, _ = await asyncio.gather(
        dialplan_globals(config_path, folder), crmtel_side.seed(database_url, spec.staff, spec.customers)
    )
    cfg = PbxConfig(
        root=pbx_root,
        install=install,
        ports=ports,
        phones=spec.phones,
        queues=spec.queues,
        dialplan_globals=globals_text,
        ami_secret=ami_secret,
        recorder_secret=secrets.token_hex(12),
        webphone=spec.webphone,
    )
    write_configs(cfg)
    # The mobiles' globals come from the database: written once seeded, as `crmtel config mobile-globals`.
    await config_command(config_path, folder, "mobile-globals", "--no-reload")
    if spec.webphone:
        await webphone_endpoints(config_path, folder)
    pbx = Asterisk(cfg)
    pool = DaemonPool(folder, preexec=die_with_parent())
    pbx.start()
    rig: LiveRig | None = None
    try:
        witness = await _witness(cfg)
        rig = LiveRig(
            spec=spec,
            folder=folder,
            install=install,
            cfg=cfg,
            pbx=pbx,
            witness=witness,
            database_url=database_url,
            config_path=config_path,
            web_port=web,
            agi_port=agi,
            pool=pool,
            witnesses=[witness],
        )
        if start_crmtel:
            await rig.start_crmtel()
        yield rig
    finally:
        if rig is not None:
            for proc in [*rig.callers, rig.phones, rig.world]:
                if proc is not None:
                    await proc.stop()
            await rig.witness.close()
        pool.close()
        await asyncio.to_thread(pbx.stop)


def linkedids_in(messages: Sequence[AmiMessage]) -> list[str]:
    """Linkedids in the order their first channel appeared."""
    seen: dict[str, None] = {}
    for m in messages:
        if m.event == "Newchannel" and (lid := m.get("Linkedid")):
            seen.setdefault(lid, None)
    return list(seen)
