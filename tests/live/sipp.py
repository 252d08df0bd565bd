"""Real SIP endpoints played by sipp: the outside caller on the trunk, desk phones, the world behind the trunk.

Scenarios are generated from small behaviour values. One sipp process plays every desk phone of a PBX (the
phones' contacts differ only by user, ``sip:101@127.0.0.1:PORT``) and one plays the outside world behind the
trunk (numbers dialled out, the managers' mobiles): each INVITE is dispatched on its Request-URI user to the
behaviour given for it. Every caller is a sipp process of its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from xml.sax.saxutils import escape

from tests.live.asterisk import Install
from tests.live.children import die_with_parent, track

# --- behaviours -------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Answers:
    """Rings ``ring`` s, answers; hangs up after ``talk`` s unless the other side does first (None: never)."""

    ring: float
    talk: float | None = None


@dataclass(frozen=True, slots=True)
class NeverAnswers:
    """Rings until the PBX gives up (CANCEL), every time it is offered the call."""


@dataclass(frozen=True, slots=True)
class Busy:
    """Answers every INVITE with 486 Busy Here at once."""


@dataclass(frozen=True, slots=True)
class Declines:
    """Answers every INVITE with ``code`` (e.g. 603 Decline, 480 Temporarily Unavailable) at once."""

    code: int = 603
    reason: str = "Decline"


@dataclass(frozen=True, slots=True)
class Forwards:
    """Call forwarding on the phone: 302 Moved Temporarily to ``number`` (the PBX dials it on)."""

    number: str


@dataclass(frozen=True, slots=True)
class BlindTransfers:
    """Rings ``ring`` s, answers, talks ``talk`` s, then REFERs the call to extension ``to``."""

    ring: float
    talk: float
    to: str


@dataclass(frozen=True, slots=True)
class AttendedTransfers:
    """Rings, answers, talks, then the attended-transfer feature code (*2 + ``to``) as SIP INFO DTMF; hangs up
    ``consult`` s later, once ``to`` has answered, which completes the transfer."""

    ring: float
    talk: float
    to: str
    consult: float


@dataclass(frozen=True, slots=True)
class Confirms:
    """A manager's mobile asked to confirm: rings ``ring`` s, answers, presses ``digit`` ``after`` s later (SIP
    INFO, while the PBX plays its prompt), then talks until the PBX's BYE or ``talk`` s (None: never hangs up)."""

    ring: float
    after: float = 1.0
    digit: str = "1"
    talk: float | None = None


Behaviour = (
    Answers | NeverAnswers | Busy | Declines | Forwards | BlindTransfers | AttendedTransfers | Confirms
)


# --- scenario text ----------------------------------------------------------------------------------------

SDP = """v=0
o=live 53655765 2353687637 IN IP[local_ip_type] [local_ip]
s=-
c=IN IP[media_ip_type] [media_ip]
t=0 0
m=audio [media_port] RTP/AVP 0 8
a=rtpmap:0 PCMU/8000
a=rtpmap:8 PCMA/8000
a=sendrecv
"""

TAG = "[pid]LIVE[call_number]"


def _send(text: str, *, retrans: bool = False, attrs: str = "") -> str:
    retr = ' retrans="500"' if retrans else ""
    return f"  <send{retr}{attrs}><![CDATA[\n{text.strip()}\n\n]]></send>\n"


def _response(
    code: int, reason: str, *, sdp: bool = False, cseq: str = "[last_CSeq:]", tag: bool = True
) -> str:
    to = f"[last_To:];tag={TAG}" if tag else "[last_To:]"
    head = f"""SIP/2.0 {code} {reason}
[last_Via:]
[last_From:]
{to}
[last_Call-ID:]
{cseq}
Contact: <sip:[$user]@[local_ip]:[local_port];transport=[transport]>
"""
    if sdp:
        return head + f"Content-Type: application/sdp\nContent-Length: [len]\n\n{SDP}"
    return head + "Content-Length: 0\n"


def _in_dialog(method: str, cseq: int, extra: str = "", body: str = "", ctype: str = "") -> str:
    # A request the phone (the UAS of the call) sends inside the dialog.
    text = f"""{method} [next_url] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
From: <sip:[$user]@[local_ip]:[local_port]>;tag={TAG}
To:[$remote_from]
Call-ID: [call_id]
CSeq: {cseq} {method}
Contact: <sip:[$user]@[local_ip]:[local_port];transport=[transport]>
Max-Forwards: 70
{extra}"""
    if body:
        return text.rstrip("\n") + f"\nContent-Type: {ctype}\nContent-Length: [len]\n\n{body}"
    return text.rstrip("\n") + "\nContent-Length: 0\n"


def _ms(seconds: float) -> int:
    return max(1, round(seconds * 1000))


def _ok_to_request() -> str:
    return _send(_response(200, "OK", tag=False).replace("[$user]@", ""))


def _branch(label: str, behaviour: Behaviour, sip_target: str) -> str:
    """The scenario steps for one user, starting at label ``label`` (the INVITE already received)."""
    out = f'  <label id="{label}"/>\n'
    if isinstance(behaviour, Busy):
        return out + _send(_response(486, "Busy Here")) + '  <recv request="ACK"/>\n  <nop next="end"/>\n'
    if isinstance(behaviour, Declines):
        return (
            out
            + _send(_response(behaviour.code, behaviour.reason))
            + '  <recv request="ACK"/>\n  <nop next="end"/>\n'
        )
    if isinstance(behaviour, Forwards):
        moved = _response(302, "Moved Temporarily").replace(
            "Contact: <sip:[$user]@[local_ip]:[local_port];transport=[transport]>",
            f"Contact: <sip:{behaviour.number}@[local_ip]:[local_port]>",
        )
        return out + _send(moved) + '  <recv request="ACK"/>\n  <nop next="end"/>\n'
    out += _send(_response(180, "Ringing"))
    if isinstance(behaviour, NeverAnswers):
        return out + '  <recv request="CANCEL" next="cancelled"/>\n'
    ring = behaviour.ring
    out += f'  <recv request="CANCEL" timeout="{_ms(ring)}" ontimeout="{label}-answer" next="cancelled"/>\n'
    out += f'  <label id="{label}-answer"/>\n'
    out += _send(_response(200, "OK", sdp=True), retrans=True)
    out += '  <recv request="ACK"/>\n'
    if isinstance(behaviour, Confirms):
        out += (
            f'  <recv request="BYE" timeout="{_ms(behaviour.after)}" ontimeout="{label}-press" next="bye"/>\n'
        )
        out += f'  <label id="{label}-press"/>\n'
        info = _in_dialog(
            "INFO", 101, body=f"Signal={behaviour.digit}\nDuration=160\n", ctype="application/dtmf-relay"
        )
        out += _send(info, retrans=True)
        out += '  <recv response="200"/>\n'
        if behaviour.talk is None:
            return out + '  <recv request="BYE" next="bye"/>\n'
        return (
            out + f'  <recv request="BYE" timeout="{_ms(behaviour.talk)}" ontimeout="hangup" next="bye"/>\n'
        )
    if isinstance(behaviour, Answers):
        if behaviour.talk is None:
            return out + '  <recv request="BYE" next="bye"/>\n'
        return (
            out + f'  <recv request="BYE" timeout="{_ms(behaviour.talk)}" ontimeout="hangup" next="bye"/>\n'
        )
    out += f'  <recv request="BYE" timeout="{_ms(behaviour.talk)}" ontimeout="{label}-xfer" next="bye"/>\n'
    out += f'  <label id="{label}-xfer"/>\n'
    if isinstance(behaviour, BlindTransfers):
        refer = _in_dialog(
            "REFER",
            101,
            f"Refer-To: <sip:{behaviour.to}@{sip_target}>\n"
            "Referred-By: <sip:[$user]@[local_ip]:[local_port]>\n",
        )
        out += _send(refer, retrans=True)
        out += '  <recv response="202"/>\n'
        # NOTIFYs of the transfer's progress and the PBX's BYE come in either order.
        out += f'  <label id="{label}-wait"/>\n'
        out += f'  <recv request="NOTIFY" optional="true" next="{label}-notified"/>\n'
        out += '  <recv request="BYE" next="bye"/>\n'
        out += f'  <label id="{label}-notified"/>\n'
        out += _ok_to_request() + f'  <nop next="{label}-wait"/>\n'
        return out
    # Attended transfer through the PBX's feature code, digit by digit as SIP INFO.
    seq = 101
    for digit in "*2" + behaviour.to:
        out += _send(
            _in_dialog("INFO", seq, body=f"Signal={digit}\nDuration=120\n", ctype="application/dtmf-relay"),
            retrans=True,
        )
        out += '  <recv response="200"/>\n  <pause milliseconds="150"/>\n'
        seq += 1
    out += f'  <recv request="BYE" timeout="{_ms(behaviour.consult)}" ontimeout="{label}-done" next="bye"/>\n'
    out += f'  <label id="{label}-done"/>\n'
    out += _send(_in_dialog("BYE", seq), retrans=True)
    out += '  <recv response="200"/>\n  <nop next="end"/>\n'
    return out


def endpoint_scenario(behaviours: Mapping[str, Behaviour], sip_target: str, name: str) -> str:
    """A UAS scenario playing every user in ``behaviours`` (keyed by Request-URI user)."""
    users = list(behaviours)
    head = f'<?xml version="1.0" encoding="UTF-8"?>\n<scenario name="{escape(name)}">\n'
    head += '  <recv request="INVITE" rrs="true">\n    <action>\n'
    head += '      <ereg regexp="^INVITE sip:\\+?([^@;>]+)@" search_in="msg" check_it="true" assign_to="user,user"/>\n'
    head += (
        '      <ereg regexp=".*" search_in="hdr" header="From:" check_it="true" assign_to="remote_from"/>\n'
    )
    head += '      <ereg regexp="^CSeq: *([0-9]+)" search_in="hdr" header="CSeq:" assign_to="cseq,cseq"/>\n'
    for i, user in enumerate(users):
        head += f'      <ereg regexp="^INVITE sip:\\+?{user}@" search_in="msg" check_it="false" assign_to="u{i}"/>\n'
    head += "    </action>\n  </recv>\n"
    for i, _user in enumerate(users):
        head += f'  <nop test="u{i}" next="b{i}"/>\n'
    # An unknown user: 404.
    head += _send(_response(404, "Not Found")) + '  <recv request="ACK"/>\n  <nop next="end"/>\n'
    body = "".join(_branch(f"b{i}", behaviours[u], sip_target) for i, u in enumerate(users))
    tail = '  <label id="hangup"/>\n'
    tail += _send(_in_dialog("BYE", 150), retrans=True)
    tail += '  <recv response="200"/>\n  <nop next="end"/>\n'
    tail += '  <label id="bye"/>\n' + _ok_to_request() + '  <nop next="end"/>\n'
    tail += '  <label id="cancelled"/>\n' + _ok_to_request()
    tail += _send(_response(487, "Request Terminated", cseq="CSeq: [$cseq] INVITE"))
    tail += '  <recv request="ACK"/>\n'
    tail += '  <label id="end"/>\n</scenario>\n'
    return head + body + tail


@dataclass(frozen=True, slots=True)
class Caller:
    """An outside caller on a trunk: ``number`` (``anonymous`` for a hidden number) with display ``name``.

    Hangs up ``talk`` s after being answered (None: waits for the PBX's BYE), gives up (CANCEL) ``give_up`` s
    after the INVITE if nobody has answered by then.
    """

    number: str
    name: str | None
    did: str
    talk: float | None = 3.0
    give_up: float = 60.0


def caller_scenario(caller: Caller) -> str:
    """A UAC scenario for ``caller``."""
    display = f'"{caller.name}" ' if caller.name else ""
    host = "anonymous.invalid" if caller.number == "anonymous" else "[local_ip]:[local_port]"
    from_ = f"From: {display}<sip:{caller.number}@{host}>;tag={TAG}"
    branch = "z9hG4bK-live-[pid]-[call_number]"
    invite = f"""INVITE sip:{caller.did}@[remote_ip]:[remote_port] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch={branch};rport
{from_}
To: <sip:{caller.did}@[remote_ip]:[remote_port]>
Call-ID: [call_id]
CSeq: 1 INVITE
Contact: <sip:{caller.number}@[local_ip]:[local_port]>
Max-Forwards: 70
Content-Type: application/sdp
Content-Length: [len]

{SDP}"""

    def request(method: str, cseq: int, *, same_branch: bool = False, dialog: bool = True) -> str:
        # The To tag is the PBX's (from its last response), except on a CANCEL (same To as the INVITE).
        tagged = method != "CANCEL"
        to = f"To: <sip:{caller.did}@[remote_ip]:[remote_port]>" + ("[peer_tag_param]" if tagged else "")
        via_branch = branch if same_branch else "[branch]"
        uri = (
            "[next_url]"
            if dialog and method not in ("CANCEL",)
            else f"sip:{caller.did}@[remote_ip]:[remote_port]"
        )
        return f"""{method} {uri} SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch={via_branch};rport
{from_}
{to}
Call-ID: [call_id]
CSeq: {cseq} {method}
Max-Forwards: 70
Content-Length: 0
"""

    out = f'<?xml version="1.0" encoding="UTF-8"?>\n<scenario name="caller {escape(caller.number)}">\n'
    # Provisional and failure responses are "global" optional receptions: accepted whenever they come (also
    # while the call waits for the 200 later on). The 100 Trying is mandatory: the PBX sends it at once, and
    # only then does sipp arm the 200's timeout (the caller giving up) on the step the call waits at.
    out += _send(invite, retrans=True)
    # (A reception without next= would leave the call waiting on the step after it: back to the 200 instead.)
    out += '  <recv response="180" optional="global" next="wait"/>\n'
    out += '  <recv response="183" optional="global" next="wait"/>\n'
    for code in (403, 404, 480, 486, 487, 500, 503, 603):
        out += f'  <recv response="{code}" optional="global" next="rejected"/>\n'
    out += '  <recv response="100"/>\n'
    out += '  <label id="wait"/>\n'
    out += f'  <recv response="200" rrs="true" timeout="{_ms(caller.give_up)}" ontimeout="giveup"/>\n'
    out += _send(request("ACK", 1))
    if caller.talk is None:
        out += '  <recv request="BYE" next="bye"/>\n'
    else:
        out += f'  <recv request="BYE" timeout="{_ms(caller.talk)}" ontimeout="hangup" next="bye"/>\n'
    out += '  <label id="hangup"/>\n'
    out += _send(request("BYE", 2), retrans=True)
    out += '  <recv response="200"/>\n  <nop next="end"/>\n'
    out += '  <label id="bye"/>\n' + _ok_to_request() + '  <nop next="end"/>\n'
    out += '  <label id="giveup"/>\n'
    out += _send(request("CANCEL", 1, same_branch=True, dialog=False), retrans=True)
    out += '  <recv response="200"/>\n  <recv response="487"/>\n'
    out += _send(request("ACK", 1, same_branch=True, dialog=False)) + '  <nop next="end"/>\n'
    out += '  <label id="rejected"/>\n'
    out += _send(request("ACK", 1, same_branch=True, dialog=False))
    out += '  <label id="end"/>\n</scenario>\n'
    return out


# --- processes --------------------------------------------------------------------------------------------


@dataclass
class SippProcess:
    """One sipp process; its logs stay in the test's folder."""

    name: str
    proc: asyncio.subprocess.Process
    folder: Path

    def logs(self) -> str:
        """Its error log and screen, for assertion messages."""
        parts = []
        for path in sorted(self.folder.glob(f"{self.name}*")):
            if path.suffix in (".log", ".out"):
                parts.append(f"--- {path.name}\n{path.read_text(errors='replace')[-3000:]}")
        return "\n".join(parts)

    async def wait(self, limit: float) -> int:
        """Its exit code (sipp: 0 all calls succeeded, 1 some failed)."""
        return await asyncio.wait_for(self.proc.wait(), limit)

    async def stop(self) -> None:
        """SIGTERM, then SIGKILL; reaped."""
        if self.proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(self.proc.wait(), 5)
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    self.proc.kill()
                await self.proc.wait()


async def spawn_sipp(
    install: Install,
    folder: Path,
    name: str,
    scenario: str,
    *,
    bind_ip: str,
    port: int,
    media_port: int,
    remote: str | None = None,
    calls: int | None = None,
) -> SippProcess:
    """Start sipp with ``scenario`` on ``bind_ip:port`` (a UAC towards ``remote`` when given)."""
    xml = folder / f"{name}.xml"
    xml.write_text(scenario, encoding="utf-8")
    args = [
        str(install.sipp),
        "-sf",
        str(xml),
        "-i",
        bind_ip,
        "-p",
        str(port),
        "-mp",
        str(media_port),
        "-nostdin",
        "-trace_err",
        "-trace_msg",
        "-message_file",
        str(folder / f"{name}.msg.log"),
        "-error_file",
        str(folder / f"{name}.err.log"),
        "-max_recv_loops",
        "100",
        "-timer_resol",
        "10",
        "-nd",
    ]
    if calls is not None:
        args += ["-m", str(calls)]
    if remote is not None:
        args.append(remote)
    out = (folder / f"{name}.out").open("wb")
    try:
        proc = await asyncio.create_subprocess_exec(
            *args,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=folder,
            preexec_fn=die_with_parent(),
        )
    finally:
        out.close()
    track(proc)
    return SippProcess(name, proc, folder)
