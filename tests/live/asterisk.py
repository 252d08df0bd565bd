"""A private Asterisk for the live tier: found on this machine, configured from crmtel's deploy/asterisk/ files
exactly as an admin installs them, started on loopback ports of its own, stopped, killed, restarted.

Only the loopback ports and paths, the modules' noise list and the test's own endpoints (sipp phones, the
trunk, queues of sipp phones, the phones' outbound context) are written here; the AMI user, the routing,
HTTP-routing and click-to-call dialplans, the dialplan globals and the CDR settings are crmtel's shipped files
(the globals as `crmtel config dialplan-globals` prints them for the test's crmtel config).
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from tests.live.children import die_with_parent, track

PREFIX_VARIABLE = "CRMTEL_ASTERISK_PREFIX"
DEFAULT_PREFIX = Path("/opt/crmtel-asterisk")
SIPP_VARIABLE = "CRMTEL_SIPP"
DEPLOY = Path(__file__).resolve().parents[2] / "deploy" / "asterisk"
HOW_TO_GET = (
    "build one with `tests/live/build-asterisk.sh` (from the official source tarball, into "
    f"{DEFAULT_PREFIX}; `apt-get install sip-tester` for sipp) or point {PREFIX_VARIABLE} at an install prefix"
)
# Addresses of the outside world on the loopback: the SIP trunk (its calls land in [crmtel-inbound]) and a
# second trunk whose calls land in [crmtel-inbound-http] (the route asked over HTTP with a hard time bound).
TRUNK_IP = "127.0.0.10"
TRUNK_HTTP_IP = "127.0.0.11"
PHONES_IP = "127.0.0.1"
# Modules whose start-up is slow or noisy and that nothing here uses (the shared build's README).
NOLOAD = (
    "res_prometheus.so",
    "chan_iax2.so",
    "res_hep.so",
    "res_hep_pjsip.so",
    "res_hep_rtcp.so",
    "res_xmpp.so",
    "chan_motif.so",
    "res_config_ldap.so",
    "pbx_dundi.so",
)


@dataclass(frozen=True, slots=True)
class Install:
    """An Asterisk install prefix and the sipp binary the tier drives."""

    prefix: Path
    sipp: Path
    version: str

    @property
    def binary(self) -> Path:
        """The asterisk executable."""
        return self.prefix / "sbin" / "asterisk"

    @property
    def modules(self) -> Path:
        """Where its modules are."""
        return self.prefix / "lib" / "asterisk" / "modules"

    @property
    def datadir(self) -> Path:
        """astdatadir: must be the install's own (it holds the XML docs Stasis needs)."""
        return self.prefix / "var" / "lib" / "asterisk"


def find_install() -> Install | str:
    """The Asterisk (default prefix or ``$CRMTEL_ASTERISK_PREFIX``) and sipp to use, or why there are none."""
    prefix = Path(os.environ.get(PREFIX_VARIABLE) or DEFAULT_PREFIX)
    binary = prefix / "sbin" / "asterisk"
    if not os.access(binary, os.X_OK):
        return f"no Asterisk at {prefix} ({binary} missing); {HOW_TO_GET}"
    sipp = os.environ.get(SIPP_VARIABLE) or shutil.which("sipp")
    if sipp is None:
        return f"sipp not found (apt-get install sip-tester, or set {SIPP_VARIABLE}); {HOW_TO_GET}"
    try:
        out = subprocess.run(
            [str(binary), "-V"], capture_output=True, text=True, timeout=30, check=False
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError) as err:
        return f"{binary} does not run ({err}); {HOW_TO_GET}"
    if not out.startswith("Asterisk "):
        return f"{binary} -V printed {out!r}, not an Asterisk version; {HOW_TO_GET}"
    return Install(prefix=prefix, sipp=Path(sipp), version=out.removeprefix("Asterisk ").strip())


@dataclass(frozen=True, slots=True)
class Phone:
    """A desk phone: a PJSIP endpoint whose contact is the shared sipp phone process (``user@`` tells them apart)."""

    extension: str
    name: str
    registered: bool = True  # False: the endpoint has no contact (a phone that is off or never registered)


@dataclass(frozen=True, slots=True)
class Queue:
    """A queue of the test's PBX (queues.conf is the PBX's, not crmtel's)."""

    name: str
    # "PJSIP/131", "Local/141@live-agents" (state interface PJSIP/141) or "Local/171@crmtel-queue-member" (desk
    # phone and browser as one member, state hint:171@crmtel-hints)
    members: tuple[str, ...]
    strategy: str = "ringall"
    timeout: int = 4  # seconds a member rings per attempt
    retry: int = 1


@dataclass(frozen=True, slots=True)
class Ports:
    """Loopback ports of one PBX and of the sipp endpoints it talks to."""

    ami: int
    sip: int  # UDP, PJSIP transport
    http: int
    phones: int  # UDP, the sipp process playing every desk phone (127.0.0.1)
    trunk: int  # UDP, the sipp process playing the outside world behind the trunk (127.0.0.10)
    rtp_start: int


@dataclass(frozen=True, slots=True)
class PbxConfig:
    """Everything a private PBX is built from."""

    root: Path
    install: Install
    ports: Ports
    phones: tuple[Phone, ...]
    queues: tuple[Queue, ...]
    dialplan_globals: str  # `crmtel config dialplan-globals` output for the test's crmtel config
    ami_secret: str  # the crmtel AMI user's secret (the admin's one edit of manager.d/crmtel.conf)
    recorder_secret: str
    # The browser phones: a ws:// transport on the loopback and crmtel's generated endpoints, included from
    # pjsip.conf as pjsip_crmtel_webphone.conf (written by `crmtel config webphone-endpoints` before start).
    webphone: bool = False

    @property
    def etc(self) -> Path:
        """astetcdir."""
        return self.root / "etc"

    @property
    def log_dir(self) -> Path:
        """astlogdir."""
        return self.root / "log"

    @property
    def master_csv(self) -> Path:
        """cdr_csv's Master.csv."""
        return self.log_dir / "cdr-csv" / "Master.csv"

    @property
    def monitor_dir(self) -> Path:
        """Where MixMonitor writes relative file names (astspooldir/monitor)."""
        return self.root / "spool" / "monitor"


def _asterisk_conf(cfg: PbxConfig) -> str:
    r = cfg.root
    return f"""[directories]
astetcdir => {r}/etc
astmoddir => {cfg.install.modules}
astdatadir => {cfg.install.datadir}
astvarlibdir => {r}/lib
astdbdir => {r}/lib
astkeydir => {r}/lib
astagidir => {r}/lib
astspooldir => {r}/spool
astrundir => {r}/run
astlogdir => {r}/log

[options]
; A loaded machine: do not refuse calls because of the load average.
maxload = 0
"""


def _modules_conf() -> str:
    return "[modules]\nautoload = yes\n" + "".join(f"noload = {m}\n" for m in NOLOAD)


def _manager_conf(cfg: PbxConfig) -> str:
    # manager.conf's own first [general] as deploy/asterisk/manager.d/crmtel.conf asks for it; the test's own
    # witness user; the crmtel user included last, from its shipped file.
    return f"""[general]
enabled = yes
bindaddr = 127.0.0.1
port = {cfg.ports.ami}
timestampevents = yes
displayconnects = no

; The live tier's own witness: every event class, so the test sees what the PBX did.
[live-recorder]
secret = {cfg.recorder_secret}
deny = 0.0.0.0/0.0.0.0
permit = 127.0.0.1/255.255.255.255
read = all
write = all

#include "manager.d/crmtel.conf"
"""


def installed_ami_user(secret: str) -> str:
    """deploy/asterisk/manager.d/crmtel.conf with the admin's one edit: the secret."""
    text = (DEPLOY / "manager.d" / "crmtel.conf").read_text(encoding="utf-8")
    edited, count = re.subn(r"(?m)^secret = .*$", f"secret = {secret}", text)
    assert count == 1, "manager.d/crmtel.conf must have exactly one secret line"
    return edited


def _extensions_conf() -> str:
    # extensions.conf of the PBX: the globals file included inside [globals] as the README says, crmtel's
    # dialplans included, and the test's own contexts for its phones and queue agents.
    return """[general]
static = yes
writeprotect = yes

[globals]
#include extensions_crmtel_globals.conf
#tryinclude extensions_crmtel_mobiles.conf

#include extensions_crmtel.conf
#include extensions_crmtel_http.conf
#include extensions_crmtel_originate.conf
#include extensions_crmtel_webphone.conf
#include extensions_crmtel_mobile.conf
#include extensions_live.conf
"""


# The test's own contexts: what a PBX admin has besides crmtel (desk phones dialling each other and out
# through the trunk, FreePBX-style Local/ queue agents). Not crmtel's files, so written here.
LIVE_CONTEXTS = """; Desk phones: colleagues by extension, outside numbers through the trunk (recorded).
[live-phones]
exten => _1XX,1,Dial(PJSIP/${EXTEN},30,tT)
 same => n,Hangup()
exten => _8X.,1,MixMonitor(out-${CALLERID(num)}-${UNIQUEID}.wav,b)
 same => n,Dial(PJSIP/${EXTEN}@trunk,30,T)
 same => n,Hangup()
exten => _+X.,1,Goto(live-phones,8${EXTEN:2},1)

; Queue members as Local channels (FreePBX style).
[live-agents]
exten => _1XX,1,Dial(PJSIP/${EXTEN},,t)
 same => n,Hangup()
"""


def _pjsip_conf(cfg: PbxConfig) -> str:
    p = cfg.ports
    parts = [
        f"""[live-udp]
type = transport
protocol = udp
bind = 127.0.0.1:{p.sip}

[trunk]
type = endpoint
transport = live-udp
context = crmtel-inbound
disallow = all
allow = ulaw,alaw
aors = trunk
direct_media = no
rtp_symmetric = yes
send_pai = no
trust_id_inbound = no

[trunk]
type = aor
contact = sip:{TRUNK_IP}:{p.trunk}

[trunk]
type = identify
endpoint = trunk
match = {TRUNK_IP}

[trunk-http]
type = endpoint
transport = live-udp
context = crmtel-inbound-http
disallow = all
allow = ulaw,alaw
direct_media = no
rtp_symmetric = yes

[trunk-http]
type = identify
endpoint = trunk-http
match = {TRUNK_HTTP_IP}

[live-phone](!)
type = endpoint
transport = live-udp
context = live-phones
disallow = all
allow = ulaw,alaw
direct_media = no
rtp_symmetric = yes
dtmf_mode = info
"""
    ]
    if cfg.webphone:
        # The test's transport: ws:// on the loopback (a browser counts http://127.0.0.1 as a secure context);
        # deploy/asterisk/pjsip_crmtel_webphone_transport.conf is the same with protocol = wss.
        parts.append(
            "[live-ws]\ntype = transport\nprotocol = ws\nbind = 127.0.0.1\n\n#include pjsip_crmtel_webphone.conf\n"
        )
    for phone in cfg.phones:
        parts.append(
            f"""[{phone.extension}](live-phone)
aors = {phone.extension}
callerid = "{phone.name}" <{phone.extension}>

[{phone.extension}]
type = aor
"""
            + (
                f"contact = sip:{phone.extension}@{PHONES_IP}:{p.phones}\n"
                if phone.registered
                else "max_contacts = 1\n"
            )
        )
    return "\n".join(parts)


def _queues_conf(cfg: PbxConfig) -> str:
    out = ["[general]", "persistentmembers = no", "shared_lastcall = yes", ""]
    for q in cfg.queues:
        out += [
            f"[{q.name}]",
            f"strategy = {q.strategy}",
            f"timeout = {q.timeout}",
            f"retry = {q.retry}",
            "joinempty = yes",
            "leavewhenempty = no",
            "ringinuse = no",
            "announce-position = no",
            "announce-frequency = 0",
            "periodic-announce-frequency = 0",
        ]
        for member in q.members:
            if member.startswith("Local/") and member.endswith("@crmtel-queue-member"):
                # The manager's desk phone and browser as one member (deploy/asterisk/extensions_crmtel_webphone.conf).
                ext = member.removeprefix("Local/").split("@", 1)[0]
                out.append(f"member => {member},0,,hint:{ext}@crmtel-hints")
            elif member.startswith("Local/"):
                ext = member.removeprefix("Local/").split("@", 1)[0]
                out.append(f"member => {member},0,,PJSIP/{ext}")
            else:
                out.append(f"member => {member}")
        out.append("")
    return "\n".join(out)


def write_configs(cfg: PbxConfig) -> None:
    """Lay out a private PBX's folders and configs under ``cfg.root`` (crmtel's files copied as shipped)."""
    for sub in ("etc/manager.d", "lib", "spool/monitor", "run", "log/cdr-csv"):
        # cdr_csv never creates its folder: without log/cdr-csv/ Master.csv is never written.
        (cfg.root / sub).mkdir(parents=True, exist_ok=True)
    etc = cfg.etc
    files = {
        "asterisk.conf": _asterisk_conf(cfg),
        "modules.conf": _modules_conf(),
        "logger.conf": "[general]\ndateformat = %F %T.%3q\n[logfiles]\nmessages.log => notice,warning,error,verbose(3)\n",
        "manager.conf": _manager_conf(cfg),
        "manager.d/crmtel.conf": installed_ami_user(cfg.ami_secret),
        "extensions.conf": _extensions_conf(),
        "extensions_crmtel_globals.conf": cfg.dialplan_globals,
        "extensions_live.conf": LIVE_CONTEXTS,
        "pjsip.conf": _pjsip_conf(cfg),
        "queues.conf": _queues_conf(cfg),
        "rtp.conf": f"[general]\nrtpstart = {cfg.ports.rtp_start}\nrtpend = {cfg.ports.rtp_start + 198}\n",
        "http.conf": f"[general]\nenabled = yes\nbindaddr = 127.0.0.1\nbindport = {cfg.ports.http}\n",
        # This build has no sound files: no prompts around transfers (a missing prompt aborts the transfer).
        "features.conf": (
            "[general]\ntransferdigittimeout = 2\ntransferannouncesound =\nxfersound =\nxferfailsound =\n"
            "[featuremap]\nblindxfer => #1\natxfer => *2\n"
        ),
        "musiconhold.conf": "[default]\nmode = files\ndirectory = moh\n",
    }
    for name, text in files.items():
        (etc / name).write_text(text, encoding="utf-8")
    # crmtel's dialplans and CDR settings, byte for byte (cdr.conf: cdr_crmtel.conf merged into an empty one).
    for name in (
        "extensions_crmtel.conf",
        "extensions_crmtel_http.conf",
        "extensions_crmtel_originate.conf",
        "extensions_crmtel_webphone.conf",
        "extensions_crmtel_mobile.conf",
    ):
        shutil.copyfile(DEPLOY / name, etc / name)
    shutil.copyfile(DEPLOY / "cdr_crmtel.conf", etc / "cdr.conf")


@dataclass
class Asterisk:
    """One private Asterisk process (in the foreground, so its pid is ours to signal)."""

    cfg: PbxConfig
    proc: subprocess.Popen[bytes] | None = None
    starts: int = 0
    _outputs: list[Path] = field(default_factory=list)

    @property
    def conf(self) -> Path:
        """Its asterisk.conf (the -C argument)."""
        return self.cfg.etc / "asterisk.conf"

    def start(self) -> None:
        """Start it (configs already written); returns at once — wait for its AMI banner and FullyBooted."""
        assert self.proc is None or self.proc.poll() is not None, "already running"
        self.starts += 1
        out = self.cfg.root / f"asterisk-{self.starts}.out"
        self._outputs.append(out)
        # Asterisk's local time is /etc/localtime's zone whatever TZ says (main/stdtime/localtime.c).
        env = dict(os.environ)
        with out.open("wb") as sink:
            self.proc = subprocess.Popen(
                [str(self.cfg.install.binary), "-f", "-n", "-g", "-C", str(self.conf)],
                stdin=subprocess.DEVNULL,
                stdout=sink,
                stderr=subprocess.STDOUT,
                env=env,
                start_new_session=True,
                preexec_fn=die_with_parent(),
            )
        track(self.proc)

    def alive(self) -> bool:
        """Whether the process runs."""
        return self.proc is not None and self.proc.poll() is None

    def cli(self, command: str, limit: float = 20.0) -> str:
        """``asterisk -rx COMMAND`` on this instance's control socket."""
        result = subprocess.run(
            [str(self.cfg.install.binary), "-C", str(self.conf), "-rx", command],
            capture_output=True,
            text=True,
            timeout=limit,
            check=False,
        )
        return result.stdout

    def kill9(self) -> None:
        """SIGKILL: what a crash looks like to everyone around the PBX."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)

    def stop(self, limit: float = 15.0) -> None:
        """``core stop now``; SIGKILL if it does not go."""
        if not self.alive():
            return
        assert self.proc is not None
        try:
            self.cli("core stop now", limit=limit)
            self.proc.wait(timeout=limit)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)

    def messages(self) -> str:
        """Its log (notice and worse, verbose 3), for assertion messages."""
        path = self.cfg.log_dir / "messages.log"
        return path.read_text(encoding="utf-8", errors="replace") if path.exists() else ""

    def describe(self) -> str:
        """Exit status and the tail of the log."""
        rc = None if self.proc is None else self.proc.poll()
        return f"asterisk rc={rc}\n{self.messages()[-4000:]}"
