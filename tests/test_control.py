"""The control socket, the submit client's input parsing, the program registry and sd_notify, in-process.

``test_daemon.py`` drives all of these through real daemons; here each piece is pinned down on its
own, quickly, including the cases a daemon run cannot reach cheaply (a live socket in the way, a
connection flood, a handler bug, a join that times out in virtual time).
"""

from __future__ import annotations

import argparse
import os
import socket
import stat
import uuid
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import trio
import trio.testing

import actors
from actors import control, programs
from actors.control import ControlError, ControlServer, InputFileError, read_numbers
from actors.daemon import _UseTracked, join_session
from actors.pki import make_cluster
from actors.sdnotify import Notifier
from protocols.errors import AbortError, ConfigError
from protocols.field import P61, P127, get_field


# ------------------------------------------------------------------------------------ server
async def echo(req: dict[str, Any]) -> dict[str, Any]:
    if req["op"] == "boom":
        raise RuntimeError("a bug in an operation")
    return {"ok": True, "echo": req}


async def _reply(stream: trio.abc.ReceiveStream) -> dict[str, Any] | None:
    """One reply (4-byte length + msgpack), or None if the server closed the connection first."""
    buf = bytearray()
    while len(buf) < 4 or len(buf) < 4 + int.from_bytes(buf[:4], "big"):
        try:
            chunk = await stream.receive_some(65536)
        except trio.BrokenResourceError:
            return None
        if not chunk:
            return None
        buf += chunk
    size = int.from_bytes(buf[:4], "big")
    return control.unpack_body(bytes(buf[4 : 4 + size]), size)


async def ask(path: Path, payload: bytes) -> tuple[dict[str, Any] | None, bool]:
    """Send raw bytes; return the reply and whether the connection still answers a good request."""
    with trio.fail_after(10):
        stream = await trio.open_unix_socket(str(path))
        async with stream:
            await stream.send_all(payload)
            reply = await _reply(stream)
            try:
                await stream.send_all(frame({"op": "again"}))
            except trio.BrokenResourceError:
                return reply, False
            again = await _reply(stream)
            return reply, again is not None and again["ok"]


def frame(obj: Any) -> bytes:
    return control.pack_message(obj) if isinstance(obj, dict) else obj


async def test_socket_is_private_from_birth_and_removed_on_exit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "ctl.sock"
    # the mode must come from creation (umask), not from a chmod after it: no window for others
    monkeypatch.setattr(os, "chmod", lambda *a, **k: None)
    old = os.umask(0)  # a careless environment: the server must not depend on the caller's umask
    try:
        async with trio.open_nursery() as nursery:
            server = ControlServer(path, echo)
            await nursery.start(server.serve)
            st = os.lstat(path)
            assert stat.S_ISSOCK(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o600
            reply, _ = await ask(path, frame({"op": "hello", "x": 1}))
            assert reply == {"ok": True, "echo": {"op": "hello", "x": 1}}
            nursery.cancel_scope.cancel()
    finally:
        os.umask(old)
    assert not path.exists()


async def test_stale_socket_is_replaced_and_a_live_one_refused(tmp_path: Path) -> None:
    path = tmp_path / "ctl.sock"
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stale.bind(str(path))
    stale.close()  # the file stays, nobody listens: what a crashed daemon leaves
    async with trio.open_nursery() as nursery:
        await nursery.start(ControlServer(path, echo).serve)
        with pytest.raises(ConfigError, match="another daemon is already serving the control socket"):
            ControlServer(path, echo).bind()
        reply, _ = await ask(path, frame({"op": "still-me"}))
        assert reply is not None and reply["echo"]["op"] == "still-me"
        nursery.cancel_scope.cancel()


def test_bind_refuses_what_it_must_not_touch(tmp_path: Path) -> None:
    plain = tmp_path / "file"
    plain.write_text("data")
    with pytest.raises(ConfigError, match="exists and is not a socket; refusing to remove it"):
        control.bind_control_socket(plain)
    assert plain.read_text() == "data"
    with pytest.raises(ConfigError, match="directory .* does not exist"):
        control.bind_control_socket(tmp_path / "nope" / "ctl.sock")
    with pytest.raises(ConfigError, match="Unix sockets allow 107"):
        control.bind_control_socket(tmp_path / ("x" * 120))


async def test_malformed_requests_get_error_replies_and_the_server_keeps_serving(tmp_path: Path) -> None:
    path = tmp_path / "ctl.sock"
    async with trio.open_nursery() as nursery:
        server = ControlServer(path, echo, max_request=1000)
        await nursery.start(server.serve)

        reply, alive = await ask(path, b"\xff\xff\xff\xff")
        assert reply is not None and reply["kind"] == "bad_request" and not alive
        assert "request of 4294967295 bytes: the limit is 1..1000 bytes" in reply["error"]
        reply, alive = await ask(path, b"\x00\x00\x00\x00")
        assert reply is not None and "the limit is 1..1000" in reply["error"] and not alive

        reply, alive = await ask(path, b"\x00\x00\x00\x05" + b"\xc1\xc1\xc1\xc1\xc1")
        assert reply is not None and "not valid msgpack" in reply["error"] and alive
        reply, _ = await ask(path, control.HEADER.pack(4) + b"\x93\x01\x02\x03")
        assert reply is not None and 'a map with a string "op"' in reply["error"]
        reply, _ = await ask(path, frame({"op": 7}))
        assert reply is not None and 'a map with a string "op"' in reply["error"]
        reply, _ = await ask(path, frame({"op": "boom"}))
        assert reply == {
            "ok": False,
            "kind": "internal",
            "error": "internal error: RuntimeError: a bug in an operation",
        }
        # a nested container bomb within the size limit is parsed within bounds, not expanded
        reply, _ = await ask(path, control.HEADER.pack(5) + b"\xdd\xff\xff\xff\xff")
        assert reply is not None and "not valid msgpack" in reply["error"]

        # after all that, one connection carries several good requests
        stream = await trio.open_unix_socket(str(path))
        async with stream:
            for k in range(3):
                await stream.send_all(frame({"op": "n", "k": k}))
                head = await stream.receive_some(4)
                body = await stream.receive_some(int.from_bytes(head, "big"))
                assert control.unpack_body(body, len(body))["echo"]["k"] == k
        nursery.cancel_scope.cancel()


async def test_a_connection_flood_is_turned_away(tmp_path: Path) -> None:
    path = tmp_path / "ctl.sock"
    async with trio.open_nursery() as nursery:
        await nursery.start(ControlServer(path, echo, max_connections=2).serve)
        idle = [await trio.open_unix_socket(str(path)) for _ in range(2)]
        await trio.testing.wait_all_tasks_blocked()  # the server holds both
        reply, alive = await ask(path, frame({"op": "x"}))
        assert reply is not None and reply["kind"] == "busy" and not alive
        for s in idle:
            await s.aclose()
        await trio.testing.wait_all_tasks_blocked()
        reply, _ = await ask(path, frame({"op": "x"}))
        assert reply is not None and reply["ok"]
        nursery.cancel_scope.cancel()


def test_client_errors_name_the_socket(tmp_path: Path) -> None:
    missing = tmp_path / "none.sock"
    with pytest.raises(ControlError, match=r"no control socket at .*none.sock: is the daemon"):
        control.call(missing, {"op": "status"})
    stale = tmp_path / "stale.sock"
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.bind(str(stale))
    s.close()
    with pytest.raises(ControlError, match="nothing is serving .* the daemon is not running"):
        control.call(stale, {"op": "status"})


def test_submit_without_a_daemon_exits_2_with_a_sentence(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    make_cluster(tmp_path / "c", 2)
    data = tmp_path / "in.txt"
    data.write_text("1\n")
    args = argparse.Namespace(
        config=str(tmp_path / "c" / "party0" / "party.toml"),
        program="sum",
        input=str(data),
        session="s",
        column=None,
        timeout=None,
        json=False,
    )
    assert control.cmd_submit(args) == 2
    assert "no control socket at" in capsys.readouterr().err


# ------------------------------------------------------------------------------------ wire values
def test_wire_safe_carries_big_ints_and_numpy_values() -> None:
    big = 2**100
    obj = {"a": big, "b": -(2**63), "c": np.int64(5), "d": Fraction(1, 3), 4: (1, 2), "e": np.arange(3)}
    assert control.wire_safe(obj) == {
        "a": str(big),
        "b": -(2**63),
        "c": 5,
        "d": "1/3",
        "4": [1, 2],
        "e": [0, 1, 2],
    }
    body = control.pack_message(obj)
    assert control.unpack_body(body[4:], len(body) - 4)["a"] == str(big)


# ------------------------------------------------------------------------------------ input files
def test_read_numbers_from_lines_and_csv(tmp_path: Path) -> None:
    f = tmp_path / "a.txt"
    f.write_text("\ufeff 12\n\n-3\n+4\r\n" + str(2**70) + "\n")
    assert read_numbers(f) == [12, -3, 4, 2**70]
    c = tmp_path / "a.csv"
    c.write_text("id,age\n1,40\n\n2, 71 \n")
    assert read_numbers(c, "age") == [40, 71]


@pytest.mark.parametrize(
    ("text", "column", "message", "category"),
    [
        ("1\n2\nabc\n", None, "line 3: 'abc' is not a number", "non-numeric value"),
        ("", None, "no numbers in the file (empty input)", "empty input"),
        ("\n  \n", None, "no numbers in the file (empty input)", "empty input"),
        ("3.5\n", None, "line 1: '3.5' is not an integer", "non-integer value"),
        ("1\nnan\n", None, "line 2: 'nan' is not a finite number", "non-numeric value"),
        ("age,cost\n1,2\n", None, "(a CSV header? give the column with --column NAME)", "non-numeric value"),
        (
            "age,cost\n1,2\n",
            "weight",
            "no column 'weight' in the CSV header (columns: age, cost)",
            "no column",
        ),
        ("age,cost\n1,2\n3,\n", "cost", "line 3: no value in column 'cost'", "missing value"),
        ("age\n", "age", "no numbers in the file (empty input)", "empty input"),
        ("", "age", "empty CSV file: no header row", "empty input"),
    ],
)
def test_read_numbers_errors_name_the_line_and_value(
    tmp_path: Path, text: str, column: str | None, message: str, category: str
) -> None:
    f = tmp_path / "in.txt"
    f.write_text(text)
    with pytest.raises(InputFileError) as info:
        read_numbers(f, column)
    assert message in str(info.value) and str(f) in str(info.value)
    assert info.value.category == category


def test_read_numbers_limits_and_unreadable_files(tmp_path: Path) -> None:
    f = tmp_path / "in.txt"
    f.write_text("1\n" * 11)
    with pytest.raises(InputFileError, match="more than 10 numbers"):
        read_numbers(f, limit=10)
    with pytest.raises(InputFileError, match="input file does not exist"):
        read_numbers(tmp_path / "missing.txt")
    f.write_bytes(b"1\n\xff\xfe\n")
    with pytest.raises(InputFileError, match="not UTF-8 text"):
        read_numbers(f)


# ------------------------------------------------------------------------------------ programs
def test_registry_names_and_lookup() -> None:
    reg = programs.Registry()

    @reg.register("twice", summary="double")
    async def twice(s: Any, values: np.ndarray) -> int:
        return 0

    assert reg.names() == ["twice"] and "twice" in reg and reg.get("twice").summary == "double"
    with pytest.raises(ValueError, match="already registered"):
        reg.register("twice")(twice)
    with pytest.raises(ValueError, match="use letters, digits and '_'"):
        reg.register("../evil")
    with pytest.raises(programs.UnknownProgram, match=r"no program named 'nope' \(registered: twice\)"):
        reg.get("nope")
    names = programs.REGISTRY.names()
    assert names == sorted(names) and {"bench_mul", "mean", "sum", "stats_mean", "logreg_train"} <= set(names)


def test_integer_vector_checks_every_value() -> None:
    f61 = get_field(P61)
    bound = programs.value_bound(f61, 3)
    assert bound == (P61 - 1) // 2 // (3 * programs.MAX_INPUT_ELEMENTS)
    out = programs.integer_vector([1, -bound, bound, "7"], f61, 3)
    assert out.dtype == np.int64 and out.tolist() == [1, -bound, bound, 7]
    for raw, message in [
        ([], "input is empty"),
        ("123", "input must be a list of numbers"),
        ([1, 2.5], "value 2 is not an integer (float)"),
        ([True], "value 1 is not an integer (bool)"),
        (["12a"], "value 1 is not an integer (str)"),
        ([bound + 1], "value 1 is out of range"),
    ]:
        with pytest.raises(programs.InputError, match=message.replace("(", r"\(").replace(")", r"\)")):
            programs.integer_vector(raw, f61, 3)
    big = programs.integer_vector([str(2**90), 1], get_field(P127), 3)
    assert big.dtype == object and big.tolist() == [2**90, 1]


@pytest.mark.parametrize("modulus", [P61, P127], ids=["p61", "p127"])
async def test_sum_mean_and_bench_programs_on_a_local_cluster(modulus: int) -> None:
    field = get_field(modulus)
    raw = [[10, -3, 7], [100, 200], [5]]
    if modulus == P127:
        raw[1].append(2**80)
    inputs = [programs.integer_vector(r, field, 3) for r in raw]
    total = sum(map(sum, raw))
    with trio.fail_after(60):
        async with actors.local_cluster(3, modulus=modulus, preprocessing="dealer") as c:
            sums = await c.run(programs.get("sum").run, per_party=[(v,) for v in inputs])
            means = await c.run(programs.get("mean").run, per_party=[(v,) for v in inputs])
            bench = await c.run(programs.get("bench_mul").run, np.asarray([1000]))
    assert sums == [total] * 3
    count = sum(map(len, raw))
    assert (
        means
        == [
            {
                "mean": float(Fraction(total, count)),
                "exact": str(Fraction(total, count)),
                "sum": total,
                "count": count,
            }
        ]
        * 3
    )
    assert programs.get("mean").render(means[0]) == str(float(Fraction(total, count)))
    assert all(b["ok"] and b["n"] == 1000 and b["t1"] >= b["t0"] for b in bench)


async def join_prog(s: Any, program: str, timeout: float) -> str:
    await join_session(s, program, s.field.name, timeout)
    return "joined"


async def test_join_names_a_party_that_submitted_another_program() -> None:
    with trio.fail_after(60):
        async with actors.local_cluster(3, modulus=P61, preprocessing="dealer") as c:
            out = await c.run_each(join_prog, per_party=[("sum", 5), ("sum", 5), ("mean", 5)])
    for i in (0, 1):
        # a party either sees the mismatch itself (culprit 2) or first gets the relayed abort of a
        # party that saw it (whichever arrives first); either way the reason names party 2's program
        assert isinstance(out[i], AbortError) and (out[i].culprit == 2 or out[i].remote), out[i]
        assert "party 2 submitted program 'mean' for this session" in str(out[i])
    assert isinstance(out[2], AbortError)


async def test_join_gives_up_on_a_party_that_never_comes(autojump_clock: trio.abc.Clock) -> None:
    async with actors.local_cluster(3, modulus=P61, preprocessing="dealer") as c:
        out: list[Any] = [None, None]

        async def one(i: int) -> None:
            try:
                out[i] = await c.parties[i].run(join_prog, "sum", 30.0, session="alone")
            except AbortError as e:
                out[i] = e

        t0 = trio.current_time()
        async with trio.open_nursery() as nursery:
            for i in (0, 1):
                nursery.start_soon(one, i)
        assert 30 <= trio.current_time() - t0 < 31
    for e in out:
        assert isinstance(e, AbortError)
        assert "party 2 did not join the session within 30 s" in str(e)


class FakePre:
    def __init__(self) -> None:
        self.ctx = object()
        self.retired = 0

    async def triples(self, n: int) -> str:
        return "t"

    def compromised(self) -> None:
        self.retired += 1


async def test_sessions_that_never_drew_preprocessing_keep_the_key() -> None:
    inner = FakePre()
    early = _UseTracked(inner, "job/x")  # type: ignore[arg-type]
    early.compromised()
    assert inner.retired == 0
    late = _UseTracked(inner, "job/y")  # type: ignore[arg-type]
    assert await late.triples(3) == "t"
    late.compromised()
    assert inner.retired == 1 and late.ctx is inner.ctx


# ------------------------------------------------------------------------------------ sd_notify
@pytest.mark.parametrize("abstract", [False, True], ids=["path", "abstract"])
def test_notifier_sends_datagrams(tmp_path: Path, abstract: bool) -> None:
    rx = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    if abstract:
        name = f"spdz-test-{uuid.uuid4().hex}"
        rx.bind("\0" + name)
        env = {"NOTIFY_SOCKET": "@" + name}
    else:
        rx.bind(str(tmp_path / "n.sock"))
        env = {"NOTIFY_SOCKET": str(tmp_path / "n.sock")}
    rx.settimeout(5)
    with rx:
        n = Notifier(env)
        assert n.enabled and n.watchdog_interval is None
        assert n.ready("up\nSTOPPING=1")  # a newline in a status must not smuggle a second field
        assert rx.recv(4096) == b"READY=1\nSTATUS=up STOPPING=1"
        assert n.stopping("bye")
        assert rx.recv(4096) == b"STOPPING=1\nSTATUS=bye"
        assert n.watchdog()
        assert rx.recv(4096) == b"WATCHDOG=1"
        n.close()


def test_notifier_without_a_manager_and_watchdog_settings() -> None:
    off = Notifier({})
    assert not off.enabled and off.ready("x") is False
    assert Notifier({"WATCHDOG_USEC": "30000000"}).watchdog_interval == 15.0
    assert Notifier({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": str(os.getpid())}).watchdog_interval == 15.0
    assert Notifier({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "1"}).watchdog_interval is None
    assert Notifier({"WATCHDOG_USEC": "junk"}).watchdog_interval is None
    gone = Notifier({"NOTIFY_SOCKET": "/nonexistent/notify.sock"})
    assert gone.ready("x") is False and gone.ready("y") is False  # logged once, never raised


# ------------------------------------------------------------------------------------ status view
def test_render_status_shows_links_pools_sessions_and_aborts() -> None:
    st = {
        "party": 1,
        "parties": 3,
        "state": "serving",
        "uptime": 3725.0,
        "field": "p61",
        "preprocessing": "mascot",
        "listen": "127.0.0.1:7701",
        "control": "/run/x.sock",
        "pid": 42,
        "links": {
            "0": {
                "address": "10.0.0.1:7700",
                "up": True,
                "lost": False,
                "reconnects": 2,
                "bytes_sent": 1_500_000,
                "bytes_received": 2_000,
                "rejected_streams": 0,
            },
            "2": {
                "address": "10.0.0.3:7702",
                "up": False,
                "lost": True,
                "reconnects": 0,
                "bytes_sent": 0,
                "bytes_received": 0,
                "rejected_streams": 5,
            },
        },
        "pool": {
            "ready": True,
            "epoch": 4,
            "levels": {"triple": 900, "mask0": 10},
            "watermarks": {"triple": [512, 1024]},
            "per_second": {"triple": 1234.5},
            "generated": {"triple": 5000},
            "failures": ["epoch 3: a batch failed"],
        },
        "sessions": {"jobs": 1, "offline": 1, "total": 2},
        "jobs": [{"session": "q1", "program": "sum", "state": "waiting", "seconds": 3.0}],
        "recent": [{"session": "q0", "program": "mean", "state": "done", "seconds": 0.2, "error": None}],
        "aborts": [{"session": "job/q-1", "reason": "party 2 did not join"}],
    }
    text = control.render_status(st)
    assert "party 1 of 3   state serving   up 1h02m" in text
    rows = {
        line.split()[0]: line.split() for line in text.splitlines() if ":770" in line and "listen" not in line
    }
    assert rows["0"][2] == "up" and rows["0"][4:6] == ["1.5", "MB"]
    assert rows["2"][2] == "LOST" and rows["2"][-1] == "5"
    assert "pools (epoch 4, ready)" in text and "512..1024" in text and "1,234" in text
    assert "re-keyed: epoch 3: a batch failed" in text
    assert "sessions running: 1 submitted, 1 offline" in text
    assert "party 2 did not join" in text and "q0" in text and "q1" in text


# ------------------------------------------------------------------------------------ deploy/
DEPLOY = Path(__file__).resolve().parent.parent / "deploy"


def unit_directives(path: Path) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for line in path.read_text().splitlines():
        if line and not line.startswith(("#", "[")) and "=" in line:
            key, value = line.split("=", 1)
            out.setdefault(key, []).append(value)
    return out


def test_the_unit_is_a_hardened_notify_service() -> None:
    d = unit_directives(DEPLOY / "spdz-party@.service")
    expect = {
        "Type": "notify",
        "NotifyAccess": "main",
        "ExecStart": "/usr/bin/env spdz party --config /etc/spdz/%i/party.toml",
        "ExecReload": "/bin/kill -HUP $MAINPID",
        "User": "spdz",
        "ProtectSystem": "strict",
        "ProtectHome": "yes",
        "NoNewPrivileges": "yes",
        "PrivateTmp": "yes",
        "PrivateDevices": "yes",
        "CapabilityBoundingSet": "",
        "RestrictAddressFamilies": "AF_UNIX AF_INET AF_INET6",
        "StateDirectory": "spdz/%i",
        "RuntimeDirectory": "spdz-%i",
        "ConfigurationDirectory": "spdz",
        "Restart": "on-failure",
        "RestartPreventExitStatus": "2",
        "WatchdogSec": "30",
    }
    for key, value in expect.items():
        assert d.get(key) == [value], (key, d.get(key))
    # the stop timeout leaves room for the daemon's default grace period (20 s) and the abort notices
    assert int(d["TimeoutStopSec"][0]) >= 30


@pytest.mark.parametrize("party", [0, 1, 2])
def test_example_configs_load_and_use_the_units_runtime_directory(party: int) -> None:
    from actors.config import load_config

    cfg = load_config(DEPLOY / "example" / f"party{party}.toml", check_files=False)
    assert cfg.party == party and cfg.n == 3 and cfg.preprocessing == "mascot"
    assert cfg.control_socket == Path(f"/run/spdz-party{party}/control.sock")
    assert cfg.tls.key == DEPLOY / "example" / "key.pem"  # beside the config, as keygen lays it out


def test_systemd_analyze_verifies_the_unit(tmp_path: Path) -> None:
    """``systemd-analyze verify`` accepts the unit (``.ci/run`` installs systemd's tools if missing).
    An instance copy is verified too: the template alone does not expand ``%i``."""
    import shutil
    import subprocess

    tool = shutil.which("systemd-analyze")
    assert tool is not None, "systemd-analyze is needed for this test: install systemd (.ci/run does)"
    instance = tmp_path / "spdz-party@party0.service"
    shutil.copy(DEPLOY / "spdz-party@.service", instance)
    for unit in (DEPLOY / "spdz-party@.service", instance):
        proc = subprocess.run([tool, "verify", str(unit)], capture_output=True, text=True, timeout=60)  # noqa: S603
        # a bad value is only a warning (exit 0) for systemd: any output counts as a failure
        report = (proc.stdout + proc.stderr).strip()
        assert proc.returncode == 0 and not report, f"systemd-analyze verify {unit.name}:\n{report}"
