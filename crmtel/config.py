"""Settings: loaded once from the environment (``CRMTEL_…``) and an optional TOML file, then frozen."""

from __future__ import annotations

import ipaddress
import os
import re
import socket
from datetime import time
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    AnyHttpUrl,
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    StringConstraints,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from crmtel.configcheck.messages import translate
from crmtel.configcheck.origins import Origins
from crmtel.configfile import read_config
from crmtel.errors import ConfigError, ConfigProblems
from crmtel.i18n.formats import check_currency, zone

_FROZEN = ConfigDict(frozen=True, extra="forbid")
# FreePBX's WebRTC module creates a device 99<ext> for user <ext> (the UCP phone).
FREEPBX_DEVICE_PREFIXES = ("99",)


class DialRule(BaseModel):
    """A dial-prefix rule: an E.164 number starting with ``prefix`` is dialled with ``replace`` instead."""

    model_config = _FROZEN

    prefix: str = Field(pattern=r"^\+?\d*$", max_length=8)
    replace: str = Field(default="", pattern=r"^[\d#*+]*$", max_length=8)


# A number pattern of the click-to-call policy: "+", digits and the glob characters "?", "*", "[…]", "!".
Pattern = Annotated[str, StringConstraints(strip_whitespace=True, pattern=r"^[+\d?*\[\]!-]{1,40}$")]


class OriginateSettings(BaseModel):
    """Click-to-call on one PBX: how crmtel's AMI ``Originate`` rings the manager's phone and dials out."""

    model_config = _FROZEN

    # The manager's own phone, rung first: ``PJSIP/{extension}``, or ``Local/{extension}@from-internal``.
    channel: str = Field(default="PJSIP/{extension}", pattern=r"\{extension\}")
    # "Via my mobile": the Local channel whose other half rings the manager's mobile through the trunk and waits
    # for them to press 1 (deploy/asterisk/extensions_crmtel_mobile.conf) before the number is dialled.
    mobile_channel: str = Field(
        default="Local/{extension}@crmtel-mobile", pattern=r"^Local/\{extension\}@[\w-]+$"
    )
    # Where the answered phone goes to dial the number (deploy/asterisk/extensions_crmtel.conf).
    context: str = Field(default="crmtel-originate", pattern=r"^[\w-]+$")
    priority: int = Field(default=1, ge=1)
    # What the manager's phone shows while it rings ({name}: the client or lead, else the number).
    phone_callerid: str = "{name} <{number}>"
    # The number the called party sees (CRMTEL_OUTBOUND_CALLERID for the dialplan); empty: the trunk's own.
    outgoing_callerid: str = Field(default="", pattern=r"^\+?\d*$", max_length=20)
    # First matching rule wins; no rule: the E.164 number is dialled as it is (+7916…).
    dial_rules: tuple[DialRule, ...] = ()
    # Extensions that live on this PBX (glob patterns such as "1??"); empty: learnt from its calls.
    extensions: tuple[str, ...] = ()
    # How long the manager's phone rings before the attempt counts as "your phone did not answer".
    ring_seconds: int = Field(default=30, ge=5, le=300)
    # A second click on the same number within this many seconds does not dial again.
    dedup_seconds: float = Field(default=5.0, ge=0, le=120)
    # Which numbers may be called (crmtel.dial.policy): glob patterns on the E.164 number ("?" one digit, "*" any,
    # "[3489]" one of), a deny pattern beats an allow pattern. The defaults suit a Russian team: Russian
    # landlines, mobiles and 8-800 only; premium 8-803/8-809, other countries (8 10…, 00…) and satellite
    # (+881, +882) refused. Abkhazia's +7 840 / +7 940 share Russia's +7 but are billed as international; the
    # phonenumbers library files them under RU (9.0: no region of their own), so they are denied by prefix.
    allow: tuple[Pattern, ...] = ("+7[3489]?????????",)
    deny: tuple[Pattern, ...] = ("+7803*", "+7809*", "+7840*", "+7940*")
    # Short numbers (extensions) that may be called besides the PBX's own ``extensions``: by default exactly
    # three digits, as the shipped dialplan rings them (anything else it sends to the trunk); not service
    # numbers (00, 01-04, 100-104, 112). Widen together with the dialplan's extension pattern.
    allow_extensions: tuple[Pattern, ...] = ("[1-9]??",)
    deny_extensions: tuple[Pattern, ...] = ("0*", "10[0-4]", "112", "911")
    # At most this many attempts in any rate_seconds: by one manager, and on this PBX (every node, the CLI too).
    max_per_manager: int = Field(default=10, ge=1, le=10_000)
    max_per_pbx: int = Field(default=60, ge=1, le=100_000)
    rate_seconds: float = Field(default=60.0, gt=0, le=86_400)


class AmiSettings(BaseModel):
    """One Asterisk Manager Interface connection (one PBX)."""

    model_config = _FROZEN

    name: str = "pbx1"
    host: str = "127.0.0.1"
    port: int = Field(default=5038, ge=1, le=65535)
    username: str = "crmtel"
    secret: SecretStr = SecretStr("")
    auth: Literal["plain", "md5"] = "md5"
    ping_interval: float = Field(default=10.0, gt=0)
    ping_timeout: float = Field(default=3.0, gt=0)
    reconnect_min: float = Field(default=0.5, gt=0)
    reconnect_max: float = Field(default=30.0, gt=0)
    # First wait after the PBX refused the login (doubling up to 10 min): a wrong secret is not a network blip.
    login_retry: float = Field(default=60.0, gt=0)
    enabled: bool = True
    # Endpoints that are trunks even though their names look like extensions (e.g. a provider called "5000").
    trunks: tuple[str, ...] = ()
    # "freepbx" turns on FreePBX's conventions (today: its WebRTC devices 99<ext> count as <ext>).
    flavour: Literal["asterisk", "freepbx"] = "asterisk"
    # Device prefixes that still mean the user's extension (PJSIP/99101 rings for 101); None: by flavour.
    device_prefixes: tuple[Annotated[str, Field(pattern=r"^\d{1,4}$")], ...] | None = None
    # Asterisk's own CDR, read to backfill what crmtel missed while it was down: "csv:/var/log/asterisk/
    # cdr-csv/Master.csv", "mysql://user:pw@host/asteriskcdrdb", "postgresql://…"; None: no backfill.
    cdr: str | None = None
    cdr_table: str = Field(default="cdr", pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")
    # The zone the PBX writes CDR times in (its local time); None: this host's zone. usegmtime: UTC.
    cdr_timezone: str | None = None
    cdr_usegmtime: bool = False
    # Seconds re-read before the last point crmtel had processed, so nothing at the edge is missed.
    cdr_margin: float = Field(default=300.0, ge=0)
    # Seconds between CoreShowChannels checks that close calls whose channels are gone; 0: only on connect.
    reconcile_interval: float = Field(default=300.0, ge=0)

    @field_validator("cdr")
    @classmethod
    def _cdr_source(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        # Imported here: the CDR feature parses its own setting, config only asks it whether it is valid.
        from crmtel.cdr.models import CdrSpec

        try:
            CdrSpec.parse(value)
        except ConfigError as err:
            raise ValueError(str(err)) from err
        return value.strip()

    @field_validator("cdr_timezone")
    @classmethod
    def _cdr_zone(cls, value: str | None) -> str | None:
        from crmtel.cdr.times import pbx_zone

        if value is not None:
            try:
                pbx_zone(value, False)
            except ConfigError as err:
                raise ValueError(str(err)) from err
        return value

    @property
    def devices_of_users(self) -> tuple[str, ...]:
        """The device prefixes in effect: the configured list, else FreePBX's WebRTC prefix on FreePBX."""
        if self.device_prefixes is not None:
            return self.device_prefixes
        return FREEPBX_DEVICE_PREFIXES if self.flavour == "freepbx" else ()

    originate: OriginateSettings = OriginateSettings()


# A manager's login as the config names one (``calls.default_owner``, ``calls.queue_owners``), and a queue name.
Login = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100)]
QueueName = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=64)]


class CallsSettings(BaseModel):
    """What crmtel does with finished calls."""

    model_config = _FROZEN

    # Empty: recordings are played through crmtel itself (GET /api/calls/{id}/recording, logged-in managers
    # who may see the call). A template ({pbx}, {basename}, {linkedid}, {path}, {relpath}) points elsewhere.
    recording_url_template: str = ""
    callback_due_minutes: int = Field(default=30, ge=1)
    # Who owns a call nobody answered, placed or is responsible for and no manager's phone rang for (and its
    # callback task): the manager (login) named for its queue, else the default owner (crmtel.calls.owner).
    queue_owners: dict[QueueName, Login] = Field(default_factory=dict)
    default_owner: Login | None = None
    create_leads_for_unknown: bool = True
    # A callback a person planned for later is closed by a call made before it was due only when that call
    # was answered and lasted at least this long (crmtel.tasks.rules).
    planned_close_min_talk_seconds: int = Field(default=60, ge=0, le=3600)
    # The stop's one budget from SIGTERM: how long crmtel keeps retrying a locked or unreachable database so
    # that the calls it has received are written before it exits (then exit 75, the calls not written logged).
    # systemd's TimeoutStopSec (deploy/systemd) must be longer.
    stop_write_seconds: float = Field(default=60.0, ge=0, le=3600)
    # Call records held in memory while the store is down or locked; past this many, tracking waits for the store
    # (AMI reading pauses and TCP slows the PBX; nothing is dropped) instead of holding ever more. Below it,
    # popups never wait for a write.
    max_unwritten: int = Field(default=20_000, ge=100, le=1_000_000)
    # The one-click results a manager picks for a call, in this order: the codes talked, agreed, callback,
    # not_interested, no_answer, wrong_number are named in the reader's language; any other text is shown
    # as written (e.g. "Замер назначен"). Stored with the call as written here.
    results: tuple[
        Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=50)], ...
    ] = ("talked", "agreed", "callback", "not_interested", "no_answer", "wrong_number")

    @field_validator("results")
    @classmethod
    def _distinct_results(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if not value:
            raise ValueError("at least one result")
        if len(set(value)) != len(value):
            raise ValueError("results must differ from each other")
        return value


class DidRule(BaseModel):
    """Per-DID defaults: the queue used when nothing better applies, and working hours."""

    model_config = _FROZEN

    default_queue: str | None = None
    open_at: time | None = None
    close_at: time | None = None
    after_hours_kind: Literal["extension", "queue"] = "queue"
    after_hours_target: str | None = None


class DealsSettings(BaseModel):
    """The sales pipeline: its stages in order, and the reasons a deal is lost."""

    model_config = _FROZEN

    # Codes the page names in the reader's language (new, qualification, proposal, negotiation, invoice), or
    # any other text, shown as written. Won and lost are not stages: they close a deal.
    stages: tuple[
        Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=50)], ...
    ] = (
        "new",
        "qualification",
        "proposal",
        "negotiation",
        "invoice",
    )
    lost_reasons: tuple[
        Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100)], ...
    ] = (
        "price",
        "competitor",
        "no_budget",
        "no_answer",
        "not_relevant",
        "other",
    )

    @field_validator("stages")
    @classmethod
    def _distinct(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if not value:
            raise ValueError("at least one stage")
        if len(set(value)) != len(value) or {"won", "lost"} & set(value):
            raise ValueError("stages must differ from each other and from won and lost")
        return value


class RoutingSettings(BaseModel):
    """Routing rules and the FastAGI / HTTP route servers."""

    model_config = _FROZEN

    wholesale_threshold: int = Field(default=100_000, ge=0)
    retail_queue: str = "retail"
    wholesale_queue: str = "wholesale"
    default_queue: str = "retail"
    timezone: str = "Europe/Moscow"
    open_at: time | None = None
    close_at: time | None = None
    working_days: tuple[int, ...] = (0, 1, 2, 3, 4, 5, 6)
    after_hours_kind: Literal["extension", "queue"] = "queue"
    after_hours_target: str | None = None
    dids: dict[str, DidRule] = Field(default_factory=dict)
    agi_host: str = "127.0.0.1"
    agi_port: int = Field(default=4573, ge=0, le=65535)
    # How long the personal manager's phone rings before the call goes on to the fallback queue. The dialplan
    # reads it as the global CRMTEL_RING (`crmtel config dialplan-globals`).
    ring_seconds: int = Field(default=20, ge=5, le=600)
    deadline_ms: int = Field(default=500, ge=10)
    http_token: SecretStr | None = None


class MobileSettings(BaseModel):
    """The manager's mobile as their phone: click-to-call "via my mobile" and the follow-me step.

    The dialplan (deploy/asterisk/extensions_crmtel_mobile.conf) reads these as globals
    (`crmtel config dialplan-globals`): the PBX rings the mobile for ``ring_seconds``, plays the confirmation
    prompt in ``language`` and waits ``confirm_seconds`` for the manager to press 1.
    """

    model_config = _FROZEN

    # The prompts' language: Debian's asterisk-core-sounds-ru / -en ("followme/options").
    language: Literal["ru", "en"] = "ru"
    # The folder holding the languages' sound folders when it is not Asterisk's own sounds folder (an Asterisk
    # built from source with Debian's sound packages: "/usr/share/asterisk/sounds"); empty: Asterisk's own.
    sounds: str = Field(default="", pattern=r"^(/[A-Za-z0-9_./-]*)?$", max_length=200)
    # Seconds the mobile rings, and seconds the manager has to press 1 once it answered.
    ring_seconds: int = Field(default=30, ge=5, le=120)
    confirm_seconds: int = Field(default=10, ge=3, le=60)
    # Ring the personal manager's mobile (with the same confirmation) when their desk phone does not answer
    # within routing.ring_seconds, before the fallback queue.
    followme: bool = False
    # The CRMTEL_MOBILE_<ext> globals follow-me reads, rewritten whenever a manager's mobile, extensions or
    # activity change (page, `crmtel manager`, import); #tryinclude it inside [globals]
    # (deploy/asterisk/README.md). None: print them with `crmtel config dialplan-globals --mobiles` instead.
    globals_file: Path | None = None
    # After writing globals_file, reload the dialplan over AMI (the AMI user then needs write "system");
    # off: deploy/systemd/crmtel-mobiles.path runs `dialplan reload` when the file changes.
    reload: bool = False


class WebSettings(BaseModel):
    """The managers' web app (call cards, reports) and its websocket."""

    model_config = _FROZEN

    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=0, le=65535)
    cookie_secure: bool = False
    session_hours: int = Field(default=12, ge=1)
    queue_size: int = Field(default=256, ge=1)
    # The same backlog in bytes (characters of JSON frames): whichever is reached first drops the browser.
    queue_bytes: int = Field(default=1 << 20, ge=4096)
    heartbeat: float = Field(default=20.0, gt=0)
    # How often each node compares its open pages with the store's sessions: a logout on another node,
    # ``manager passwd`` or deactivation closes a page's websocket within this (plus one query).
    session_check_seconds: float = Field(default=0.5, gt=0, le=60)
    # Seconds a client has to send a whole request header (from connecting or from its last answer); also how
    # long an idle keep-alive connection stays open. A client trickling header lines is cut off after it.
    header_timeout: float = Field(default=10.0, gt=0, le=300)
    recordings_dir: Path = Path("/var/spool/asterisk/monitor")
    # Bearer token for GET /metrics from anywhere but this host (None: local scrapes only).
    metrics_token: SecretStr | None = None
    # Reverse proxies (addresses or networks) whose X-Forwarded-For is believed for the client's address.
    trusted_proxies: tuple[str, ...] = ()
    # Password checks (argon2, ~0.1 s each) run at most login_workers at once with login_queue more waiting;
    # a login beyond that gets 429 with Retry-After instead of a pile of waiting requests.
    login_workers: int = Field(default=2, ge=1, le=64)
    login_queue: int = Field(default=64, ge=0, le=10_000)
    # Ringing cards kept in memory (by number; least recently rung dropped first), 0: read each from the store.
    # crmtel's own writes (in a cluster: any node's) forget what they change at once; card_cache_seconds
    # bounds how long a change made outside crmtel (SQL by hand) can stay unseen.
    # Session checks (the cookie's manager, read from the store on a node's first sight of it) running at once;
    # a storm of pages connecting together waits in line instead of taking a pooled connection each.
    auth_store_reads: int = Field(default=4, ge=1, le=64)
    card_cache_size: int = Field(default=10_000, ge=0, le=1_000_000)
    card_cache_seconds: float = Field(default=300.0, gt=0, le=86_400)

    @field_validator("trusted_proxies")
    @classmethod
    def _networks(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for item in value:
            try:
                ipaddress.ip_network(item.strip(), strict=False)
            except ValueError as err:
                raise ValueError(f"trusted_proxies: {item!r} is not an address or network") from err
        return value


# The browser phone's PJSIP endpoint of a manager is this prefix + their extension (99101 for 101): FreePBX's
# WebRTC device name, which the call tracker already counts as the user's own phone.
WEBPHONE_DEVICE_PREFIX = "99"


class WebphoneSettings(BaseModel):
    """The browser phone: a WebRTC device of each manager's extension on the PBX (deploy/asterisk/WEBPHONE.md)."""

    model_config = _FROZEN

    enabled: bool = False
    # The PBX's SIP-over-WebSocket address as the managers' browsers reach it: wss://pbx.example.com:8089/ws
    # (ws:// only on the loopback, where a browser still counts the page as a secure context).
    ws_url: str = ""
    # The digest realm of the generated endpoints: the browser gets md5(device:realm:secret), never a password.
    realm: str = Field(default="crmtel", pattern=r"^[A-Za-z0-9._-]{1,64}$")
    # The dialplan context the browser's own calls start in (deploy/asterisk/extensions_crmtel_webphone.conf).
    context: str = Field(default="crmtel-webphone", pattern=r"^[A-Za-z0-9_-]{1,64}$")
    # Where crmtel writes the managers' endpoints (#included from pjsip.conf); None: only printed by
    # `crmtel config webphone-endpoints`. Rewritten (and res_pjsip reloaded over AMI) when managers change.
    endpoints_file: Path | None = None
    # After writing endpoints_file, reload res_pjsip over AMI. Off by default: that needs the AMI write class
    # "system", which crmtel's least-privileged user lacks; deploy/systemd/crmtel-webphone.path reloads instead.
    reload: bool = False
    # STUN/TURN servers for the browser (stun:host:port); none on a LAN or the loopback.
    ice_servers: tuple[str, ...] = ()
    # Seconds a registration lasts (the browser renews it before then); a rotated credential's last
    # registration ends at most this long after it is replaced.
    register_seconds: int = Field(default=120, ge=60, le=3600)

    @field_validator("ws_url")
    @classmethod
    def _ws_url(cls, value: str) -> str:
        value = value.strip()
        if value and not re.match(r"^wss?://[^/\s]+(/\S*)?$", value):
            raise ValueError(
                f"ws_url {value!r} is not a ws:// or wss:// address (wss://pbx.example.com:8089/ws)"
            )
        return value

    @field_validator("ice_servers")
    @classmethod
    def _ice(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for item in value:
            if not re.match(r"^(stun|stuns|turn|turns):\S+$", item):
                raise ValueError(f"ice_servers: {item!r} is not a stun:/turn: address")
        return value

    @model_validator(mode="after")
    def _needs_address(self) -> WebphoneSettings:
        if self.enabled and not self.ws_url:
            raise ValueError("webphone.enabled needs webphone.ws_url (wss://pbx.example.com:8089/ws)")
        return self


class ReportsSettings(BaseModel):
    """The sales heads' reports."""

    model_config = _FROZEN

    # Time zone of report periods (a day starts at local midnight); None means ``routing.timezone``.
    timezone: str | None = None
    # A missed call counts as called back if an answered call with its number starts before period end + grace.
    callback_grace_hours: int = Field(default=24, ge=0)
    # Numbers match for callbacks on their last N digits (so 8916…, 7916… and +7916… agree); 0 = exact match.
    callback_match_digits: int = Field(default=10, ge=0, le=20)
    # Queue service level: calls answered within this many seconds of joining the queue (≤, not <).
    service_level_seconds: int = Field(default=20, ge=1, le=3600)
    # A missed call "called back in time" when the callback started within this many minutes.
    callback_sla_minutes: int = Field(default=15, ge=1, le=10_080)


class I18nSettings(BaseModel):
    """Language, time zone and currency of what people read (the page, reports, messages)."""

    model_config = _FROZEN

    # Used when a person has chosen nothing and their browser asks for no language crmtel speaks.
    language: Literal["ru", "en"] = "ru"
    # Money is shown in this ISO 4217 currency.
    currency: str = "RUB"
    # Times on the page and in messages; None means ``routing.timezone``.
    timezone: str | None = None

    @field_validator("currency")
    @classmethod
    def _known_currency(cls, value: str) -> str:
        return check_currency(value)

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str | None) -> str | None:
        return None if value is None else zone(value).key


class ClusterSettings(BaseModel):
    """Several crmtel nodes on one PostgreSQL database and one Redis: a leader per PBX, popups from any node."""

    model_config = _FROZEN

    enabled: bool = False
    # How this node names itself in leases, logs, /healthz and metrics (default: the host name).
    node_name: str = ""
    redis_url: SecretStr = SecretStr("redis://127.0.0.1:6379/0")
    # The Redis stream that carries live call events from each PBX's leader to every node.
    stream: str = "crmtel:live"
    stream_maxlen: int = Field(default=10_000, ge=100)
    # A standby tries for a PBX's lock this often; the leader checks its lock's session this often.
    poll_seconds: float = Field(default=1.0, gt=0, le=30)
    # A leader whose lock session is silent this long (frozen, cut off) loses the lock to a standby.
    session_timeout_seconds: float = Field(default=3.0, ge=1, le=60)
    # Each node's pool of PostgreSQL connections (beside its 4 for leadership and health, and one lock
    # connection per PBX). The nodes share the server's max_connections (100 by default) with everything
    # else: three nodes at 8 + 4 + 4 + 1 stay under half of it; crmtel warns at start when they would not fit.
    pool_size: int = Field(default=8, ge=1, le=200)
    pool_overflow: int = Field(default=4, ge=0, le=200)

    def node(self) -> str:
        """This node's name."""
        return self.node_name or socket.gethostname()


class OutboxSettings(BaseModel):
    """Delivery of the connectors' outbox (``crmtel.connectors``): retries, leases, batches."""

    model_config = _FROZEN

    # First retry after this many seconds, doubling each time up to ``retry_max_seconds``.
    retry_min_seconds: float = Field(default=5.0, gt=0, le=3600)
    retry_max_seconds: float = Field(default=3600.0, gt=0, le=86_400)
    # An event still undelivered this long after it happened is given up (failed: list and replay it).
    give_up_hours: float = Field(default=72.0, gt=0, le=24 * 30)
    # A worker's claim on an event; a node killed mid-delivery leaves it to others after this long.
    lease_seconds: float = Field(default=60.0, ge=5, le=3600)
    batch: int = Field(default=50, ge=1, le=1000)
    # Deliveries in flight at once per connector (each to a different call).
    concurrency: int = Field(default=4, ge=1, le=64)
    poll_seconds: float = Field(default=1.0, gt=0, le=60)
    backlog_seconds: float = Field(default=10.0, gt=0, le=600)
    # Delivered events (with their delivery log and the calls' memos) are deleted this many days after delivery.
    keep_days: float = Field(default=30.0, gt=0, le=3650)


class WebhookSettings(BaseModel):
    """One signed-webhook subscription (Standard Webhooks): every chosen call event POSTed to ``url``."""

    model_config = _FROZEN

    url: AnyHttpUrl
    # ``whsec_`` + base64 of at least 16 random bytes; the receiver verifies ``webhook-signature`` with it.
    secret: SecretStr
    # Call events to send (ringing, ring_stopped, answered, ended, recording); empty: all of them.
    events: tuple[Literal["ringing", "ring_stopped", "answered", "ended", "recording"], ...] = ()
    # The outbox name of this subscription (default webhook1, webhook2, … by position).
    name: str = Field(default="", pattern=r"^[a-z0-9_-]{0,32}$")
    rate_per_second: float = Field(default=10.0, gt=0, le=1000)
    timeout_seconds: float = Field(default=15.0, gt=0, le=300)

    @field_validator("secret")
    @classmethod
    def _whsec(cls, value: SecretStr) -> SecretStr:
        from crmtel.webhooks.signing import BadSecret, secret_bytes

        try:
            secret_bytes(value.get_secret_value())
        except BadSecret as err:
            raise ValueError(str(err)) from None
        return value


class Bitrix24Settings(BaseModel):
    """Bitrix24 as a server-side local application (OAuth 2); empty ``portal``: not connected."""

    model_config = _FROZEN

    # The portal's address, e.g. https://example.bitrix24.ru (REST calls go to <portal>/rest/).
    portal: str = Field(default="", pattern=r"^(https?://[^/\s]+/?)?$")
    # The local application's "Application code" (client_id, local.…) and "Application key" (client_secret).
    client_id: str = ""
    client_secret: SecretStr = SecretStr("")
    # Bitrix24's OAuth server (token refresh).
    oauth_server: str = Field(default="https://oauth.bitrix.info", pattern=r"^https?://[^\s]+$")
    # crmtel's public address: the application's handler is <public_url>/integrations/bitrix24/events.
    public_url: str = ""
    # The portal user a call is registered to when no phone of a known user rang (an IVR hang-up).
    default_user_id: int = Field(default=1, ge=1)
    # Bitrix24 allows about 2 requests a second per application (bursts queue on its side).
    rate_per_second: float = Field(default=2.0, gt=0, le=50)
    # ... and up to 50 at once after a quiet time (its leaky bucket); crmtel leaves 10 for routing lookups.
    rate_burst: int = Field(default=40, ge=1, le=50)
    timeout_seconds: float = Field(default=15.0, gt=0, le=300)
    # Show the call card to the users whose phones ring (telephony.externalCall.show/hide).
    show_card: bool = True
    # Without a public_url the portal cannot post events: crmtel polls event.offline.get this often instead.
    offline_poll_seconds: float = Field(default=5.0, ge=1, le=300)
    # Legacy: an incoming webhook's address (<portal>/rest/<user>/<code>/) instead of the application. Since
    # 2026-03 Bitrix24 refuses telephony.externalCall.* through it (WRONG_AUTH_TYPE): only lookups work.
    webhook_url: SecretStr = SecretStr("")

    @property
    def enabled(self) -> bool:
        """Whether a portal (or a legacy incoming webhook) is configured."""
        return bool(self.portal) or self.webhook_mode

    @property
    def webhook_mode(self) -> bool:
        """Whether crmtel calls the portal through an incoming webhook instead of the application."""
        return bool(self.webhook_url.get_secret_value())

    @property
    def offline_events(self) -> bool:
        """Whether the application's events are polled (``event.offline.get``): no public address."""
        return bool(self.portal) and not self.webhook_mode and not self.public_url

    @model_validator(mode="after")
    def _complete(self) -> Bitrix24Settings:
        hook = self.webhook_url.get_secret_value()
        if hook and not re.fullmatch(r"https?://[^/\s]+/rest/\d+/[A-Za-z0-9_]+/?", hook):
            raise ValueError(
                "bitrix24: webhook_url must look like https://example.bitrix24.ru/rest/1/abcdef123/"
            )
        if self.portal and not hook and (not self.client_id or not self.client_secret.get_secret_value()):
            raise ValueError("bitrix24: a portal needs client_id and client_secret (the local application's)")
        return self


class AmoCrmSettings(BaseModel):
    """amoCRM / Kommo through its OAuth 2 integration; empty ``account``: not connected."""

    model_config = _FROZEN

    # The account's address: example.amocrm.ru (or example.kommo.com; a full https:// URL also works).
    account: str = Field(default="", pattern=r"^(https?://)?[A-Za-z0-9.:-]*$")
    # The integration's ID, secret key and redirect URI (amoCRM → Settings → Integrations).
    client_id: str = ""
    client_secret: SecretStr = SecretStr("")
    redirect_uri: str = ""
    # Where tokens are exchanged (default: the account itself, /oauth2/access_token).
    oauth_server: str = ""
    # Extensions -> amoCRM user ids (who a call is by; whose screen shows the incoming call).
    users: dict[str, int] = Field(default_factory=dict)
    # amoCRM allows 7 requests a second per integration (more: 429, then a block). The default leaves one for
    # the jitter between sending and arrival (a busy event loop sends two turns close together; amoCRM counts
    # arrivals): at 7 the strict fake saw an 8th request in a second about once in 7 runs on a loaded machine.
    rate_per_second: float = Field(default=6.0, gt=0, le=7)
    timeout_seconds: float = Field(default=15.0, gt=0, le=300)
    # The call source shown in amoCRM.
    source: str = "crmtel"

    @property
    def enabled(self) -> bool:
        """Whether an account is configured."""
        return bool(self.account)

    @property
    def api(self) -> str:
        """The account's base URL."""
        return self.account.rstrip("/") if "://" in self.account else f"https://{self.account}"

    @property
    def token_url(self) -> str:
        """The OAuth token endpoint."""
        return (self.oauth_server.rstrip("/") or self.api) + "/oauth2/access_token"

    @model_validator(mode="after")
    def _complete(self) -> AmoCrmSettings:
        if self.account and (not self.client_id or not self.client_secret.get_secret_value()):
            raise ValueError("amocrm: an account needs client_id and client_secret (the integration's)")
        return self


class LogSettings(BaseModel):
    """Logging."""

    model_config = _FROZEN

    level: Literal["debug", "info", "warning", "error"] = "info"
    json_output: bool = False
    # At most repeat_burst warnings of one kind per repeat_interval seconds; the rest are counted.
    repeat_burst: int = Field(default=10, ge=1)
    repeat_interval: float = Field(default=10.0, gt=0)


class Settings(BaseSettings):
    """All of crmtel's settings; each component receives only its own section."""

    model_config = SettingsConfigDict(
        env_prefix="CRMTEL_",
        env_nested_delimiter="__",
        frozen=True,
        extra="forbid",
    )

    database_url: str = "sqlite+aiosqlite:///crmtel.db"
    region: str = "RU"
    ami: AmiSettings = AmiSettings()
    # Further PBXs beyond ``ami``; every one has its own ``name``.
    pbx: tuple[AmiSettings, ...] = ()
    calls: CallsSettings = CallsSettings()
    deals: DealsSettings = DealsSettings()
    routing: RoutingSettings = RoutingSettings()
    mobile: MobileSettings = MobileSettings()
    web: WebSettings = WebSettings()
    reports: ReportsSettings = ReportsSettings()
    i18n: I18nSettings = I18nSettings()
    log: LogSettings = LogSettings()
    cluster: ClusterSettings = ClusterSettings()
    outbox: OutboxSettings = OutboxSettings()
    webhooks: tuple[WebhookSettings, ...] = ()
    bitrix24: Bitrix24Settings = Bitrix24Settings()
    amocrm: AmoCrmSettings = AmoCrmSettings()
    webphone: WebphoneSettings = WebphoneSettings()

    @field_validator("region")
    @classmethod
    def _upper_region(cls, value: str) -> str:
        return value.upper()

    @model_validator(mode="after")
    def _unique_pbx_names(self) -> Settings:
        names = [p.name for p in (self.ami, *self.pbx)]
        if len(set(names)) != len(names):
            raise ValueError(f"PBX names must be unique, got {names}")
        return self

    @property
    def display_timezone(self) -> str:
        """The zone people read times in: ``i18n.timezone``, else ``routing.timezone``."""
        return self.i18n.timezone or self.routing.timezone

    @model_validator(mode="after")
    def _cluster_needs_postgresql(self) -> Settings:
        if self.cluster.enabled and not self.database_url.startswith("postgresql"):
            raise ValueError("cluster.enabled needs a PostgreSQL database_url (the nodes share it)")
        return self

    @property
    def pbxes(self) -> tuple[AmiSettings, ...]:
        """Every configured PBX connection that is enabled."""
        return tuple(p for p in (self.ami, *self.pbx) if p.enabled)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Environment wins over the file: the file arrives as init values, so env goes first.
        return (env_settings, init_settings)


def read_file(path: Path | None) -> dict[str, Any]:
    """The parsed TOML file (empty without one); ConfigError naming the file if it cannot be read."""
    if path is None:
        return {}
    return read_config(path)


def _labels(overrides: dict[str, Any]) -> dict[str, str]:
    # The CLI's --database-url is the only override a person types; the others come from code (tests, demo).
    return {k: "--database-url" if k == "database_url" else f"override {k}" for k in overrides}


def origins_of(path: Path | None, overrides: dict[str, Any] | None = None) -> Origins:
    """Where each value of ``load_settings(path, **overrides)`` comes from."""
    return Origins.build(path, read_file(path), os.environ, _labels(overrides or {}))


def load_settings(path: Path | None = None, **overrides: Any) -> Settings:
    """Read the optional TOML file, apply the environment on top, validate, and return frozen settings.

    Invalid values raise ConfigProblems: one line each, naming the file and key or the environment variable.
    """
    data = read_file(path)
    data.update(overrides)
    try:
        return Settings(**data)
    except RecursionError:
        # A CRMTEL_* variable holding JSON nested thousands deep.
        raise ConfigError("a CRMTEL_* environment variable holds values nested too deep") from None
    except ValidationError as err:
        origins = Origins.build(path, data, os.environ, _labels(overrides))
        # Only the problems told are worded (a hostile file may hold 80,000; wording each costs difflib).
        told = translate(err, origins, Settings, limit=ConfigProblems.MAX_LINES)
        raise ConfigProblems(told, total=err.error_count()) from None
