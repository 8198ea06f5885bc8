"""The control socket, the submit client's input parsing, the program registry and sd_notify, in-process.

``test_daemon.py`` drives all of these through real daemons; here each piece is pinned down on its
own, quickly, including the cases a daemon run cannot reach cheaply (a live socket in the way, a
connection flood, a handler bug, a join that times out in virtual time).
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import socket
import stat
import subprocess
import sys
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
from actors.control import ControlError, ControlServer, InputFileError, read_numbers, read_table
from actors.jobs import UseTracked, join_session
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


async def test_idle_connections_do_not_lock_out_status(tmp_path: Path, autojump_clock: Any) -> None:
    """Every slot held by clients that say nothing: ``status`` still gets through on its reserved
    slot (other requests are told ``busy``), and the silent clients are dropped after the short
    first-request timeout, not the long idle timeout between requests."""
    path = tmp_path / "ctl.sock"
    async with trio.open_nursery() as nursery:
        server = ControlServer(path, echo, max_connections=3, first_request_timeout=5.0)
        await nursery.start(server.serve)
        idle = [await trio.open_unix_socket(str(path)) for _ in range(3)]
        await trio.testing.wait_all_tasks_blocked()
        t0 = trio.current_time()
        reply, alive = await ask(path, frame({"op": "status"}))
        assert reply is not None and reply["echo"] == {"op": "status"} and not alive
        reply, _ = await ask(path, frame({"op": "submit"}))
        assert reply is not None and reply["kind"] == "busy"
        # the reserved slot takes a status request only; a holder that says nothing gives it up to
        # the next client (and is told busy), so silent clients cannot keep status out either
        holder = await trio.open_unix_socket(str(path))
        await trio.testing.wait_all_tasks_blocked()
        assert server.status_connections == 1
        reply, _ = await ask(path, frame({"op": "status"}))
        assert reply is not None and reply["echo"] == {"op": "status"}
        told = await _reply(holder)
        assert told is not None and told["kind"] == "busy"
        await holder.aclose()
        # the silent clients are closed by the server within the first-request timeout
        for s in idle:
            assert await s.receive_some(10) == b""
            await s.aclose()
        assert trio.current_time() - t0 <= 5.0 + 1e-6
        reply, _ = await ask(path, frame({"op": "x"}))
        assert reply is not None and reply["ok"]
        nursery.cancel_scope.cancel()


async def test_a_client_that_has_spoken_keeps_the_long_idle_timeout(
    tmp_path: Path, autojump_clock: Any
) -> None:
    path = tmp_path / "ctl.sock"
    async with trio.open_nursery() as nursery:
        await nursery.start(ControlServer(path, echo, first_request_timeout=5.0, idle_timeout=600.0).serve)
        stream = await trio.open_unix_socket(str(path))
        async with stream:
            await stream.send_all(frame({"op": "a"}))
            assert (await _reply(stream))["echo"]["op"] == "a"  # type: ignore[index]
            await trio.sleep(300.0)  # virtual time: well past the first-request timeout
            await stream.send_all(frame({"op": "b"}))
            assert (await _reply(stream))["echo"]["op"] == "b"  # type: ignore[index]
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


# ------------------------------------------------------------------------------------ tables (large inputs)
def test_read_table_lines_and_csv_with_decimals(tmp_path: Path) -> None:
    f = tmp_path / "a.txt"
    f.write_text("\ufeff 12\n\n-3.25\n+4e2\r\n.5\n")
    out = read_table(f)
    assert out.dtype == np.float64 and out.tolist() == [12.0, -3.25, 400.0, 0.5]
    c = tmp_path / "a.csv"
    c.write_text('id,age,"cost, eur"\n1,40,5.5\n\n2, 71 ,-2\r\n,,\n3,33,9e-3\n')
    everything = read_table(c)
    assert everything.shape == (3, 3) and everything[:, 2].tolist() == [5.5, -2.0, 0.009]
    assert read_table(c, "age").tolist() == [40.0, 71.0, 33.0]  # one column: flat, as before
    assert read_table(c, "cost, eur").tolist() == [5.5, -2.0, 0.009]  # a header name wins over a split
    assert read_table(c, "age,id").tolist() == [[40.0, 1.0], [71.0, 2.0], [33.0, 3.0]]
    assert read_table(c, ["id", "age"]).tolist() == [[1.0, 40.0], [2.0, 71.0], [3.0, 33.0]]
    ints = read_table(c, "age", integers=True)
    assert ints.dtype == np.int64 and ints.tolist() == [40, 71, 33]
    big = tmp_path / "big.txt"
    big.write_text(f"{2**70}\n-5\n")
    assert read_table(big, integers=True).tolist() == [2**70, -5]  # beyond int64: Python ints


def test_submit_reads_decimals_for_the_apps_and_integers_for_the_rest(tmp_path: Path) -> None:
    assert control.takes_decimals("stats_mean") and control.takes_decimals("linreg_train")
    assert not control.takes_decimals("sum") and not control.takes_decimals("bench_mul")
    assert not control.takes_decimals("no_such_program")
    f = tmp_path / "t.csv"
    f.write_text("x,y\n1.5,2\n-3,4\n")
    table = control.read_input(f, None, "stats_covariance", "p127", 3)
    assert table.tolist() == [[1.5, 2.0], [-3.0, 4.0]]
    with pytest.raises(InputFileError, match=r"line 2, column 'x': '1.5' is not an integer") as info:
        control.read_input(f, "x", "sum", "p61", 3)
    assert info.value.category == "non-integer value"
    with pytest.raises(InputFileError, match="take one column of integers: choose it with --column"):
        control.read_input(f, None, "sum", "p61", 3)
    bound = programs.value_bound(get_field(P61), 3)
    f.write_text(f"{bound}\n{bound + 1}\n")
    with pytest.raises(
        InputFileError, match=rf"line 2: '{bound + 1}' is out of range: \|x\| must be at most"
    ):
        control.read_input(f, None, "mean", "p61", 3)


@pytest.mark.parametrize(
    ("text", "column", "integers", "message", "category"),
    [
        ("1\n2.5\n\nabc\n", None, False, "line 4: 'abc' is not a number", "non-numeric value"),
        (
            "1\n2\n" + "9" * 5000 + "\n",
            None,
            True,
            "(5000 characters) is out of range: it has more than 60",
            "out of range",
        ),
        ("1\n2\n" + "9" * 5000 + "\n", None, False, "line 3: '99999", "out of range"),
        ("1\n-inf\n", None, False, "line 2: '-inf' is not a finite number", "non-numeric value"),
        (
            "1\n2e12\n",
            None,
            False,
            "line 2: '2e12' is out of range: |x| must be at most 2^40",
            "out of range",
        ),
        (
            "a,b\n1,2\n3,NaN\n",
            None,
            False,
            "line 3, column 'b': 'NaN' is not a finite number",
            "non-numeric value",
        ),
        ("a,b\n1,2\n3,x1\n", "a,b", False, "line 3, column 'b': 'x1' is not a number", "non-numeric value"),
        (
            "a,b\n1,2\n3,4,5\n",
            None,
            False,
            "line 3: 3 values, but the header names 2 columns",
            "wrong column count",
        ),
        ("a,b\n1,2\n3\n", "b", False, "line 3: no value in column 'b'", "missing value"),
        ("1,2\n3,4\n", None, False, "line 1: '1,2' is not a header row", "no header"),
        ("a,b\n1,2\n", "c,a", False, "no column 'c' in the CSV header (columns: a, b)", "no column"),
        (
            "a,b\n1,2\n",
            None,
            True,
            "2 columns (a, b), but the built-in programs take one column",
            "several columns",
        ),
        ("\n \n", None, False, "no numbers in the file (empty input)", "empty input"),
        ("a,b\n\n", None, False, "no numbers in the file (empty input)", "empty input"),
    ],
)
def test_read_table_errors_name_the_file_line_column_and_value(
    tmp_path: Path, text: str, column: str | None, integers: bool, message: str, category: str
) -> None:
    f = tmp_path / "in.csv"
    f.write_text(text)
    with pytest.raises(InputFileError) as info:
        read_table(f, column, integers=integers, bound=2.0**40)
    assert message in str(info.value) and str(f) in str(info.value), str(info.value)
    assert info.value.category == category
    assert len(str(info.value)) < 400  # a huge value is shown cut short


def test_a_5000_digit_integer_is_an_input_error_not_a_crash(tmp_path: Path) -> None:
    f = tmp_path / "in.txt"
    f.write_text("7\n" + "1" * 5000 + "\n")
    with pytest.raises(InputFileError, match=r"line 2: '1111.*\(5000 characters\) is out of range"):
        read_numbers(f)


def test_the_first_bad_value_of_a_large_file_is_found_by_line(tmp_path: Path) -> None:
    rows = 50_000
    body = b"".join(b"%d,%d.5\n" % (i, i) for i in range(rows))
    f = tmp_path / "t.csv"
    f.write_bytes(b"k,v\n" + body.replace(b"\n31337,31337.5\n", b"\n31337,3x.5\n"))
    with pytest.raises(InputFileError, match=r"t.csv: line 31339, column 'v': '3x.5' is not a number"):
        read_table(f, chunk_bytes=1 << 16)
    f.write_bytes(b"k,v\n" + body)
    out = read_table(f, chunk_bytes=1 << 16)
    assert out.shape == (rows, 2) and out[-1].tolist() == [rows - 1, rows - 0.5]


STREAM_PROBE = """
import json, resource, sys
import numpy as np
from actors.control import TableReader
reader = TableReader(sys.argv[1], bound=2.0**40, chunk_bytes=1 << 19)
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
rows = chunks = biggest = 0
for part in reader:  # a generator of blocks: nothing is kept here but counts
    assert isinstance(part, np.ndarray) and part.dtype == np.float64 and part.shape[1] == 3
    rows, chunks, biggest = rows + part.shape[0], chunks + 1, max(biggest, part.nbytes)
grown = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
print(json.dumps({"rows": rows, "chunks": chunks, "biggest": biggest, "grown": grown * 1024}))
"""


def test_a_million_rows_are_read_in_chunks_with_bounded_memory(tmp_path: Path) -> None:
    rows, block = 1_000_000, 1000
    base = np.arange(block)
    lines = b"".join(b"%d.125,-%d.5,0.25\n" % (i, i) for i in base.tolist())
    f = tmp_path / "m.csv"
    f.write_bytes(b"a,b,c\n" + lines * (rows // block))
    # in a fresh process, so that the peak resident size says what streaming the file costs
    out = subprocess.run(  # noqa: S603 (this interpreter, our own script)
        [sys.executable, "-c", STREAM_PROBE, str(f)], capture_output=True, text=True, timeout=60, check=False
    )
    assert out.returncode == 0, out.stderr
    probe = json.loads(out.stdout)
    array_bytes = rows * 3 * 8
    assert probe["rows"] == rows and probe["chunks"] >= f.stat().st_size >> 19  # one array per block
    assert probe["biggest"] < 1 << 20
    assert probe["grown"] < array_bytes / 2, probe  # a block at a time: not the table, nor a list
    whole = read_table(f)
    assert whole.shape == (rows, 3) and whole.dtype == np.float64
    assert np.array_equal(whole[:block, 0], base + 0.125) and np.array_equal(whole[-block:, 1], -base - 0.5)


# ------------------------------------------------------------------------------------ chunked upload
async def _served(path: Path, **options: Any) -> tuple[ControlServer, list[dict[str, Any]]]:
    got: list[dict[str, Any]] = []

    async def handler(req: dict[str, Any]) -> dict[str, Any]:
        got.append(req)
        return {"ok": True, "kind_of_input": type(req.get("input")).__name__}

    return ControlServer(path, handler, **options), got


@pytest.mark.parametrize(
    "values",
    [
        np.arange(30_000 * 3, dtype=np.float64).reshape(30_000, 3) / 7 - 1000,
        np.arange(-50_000, 50_000, dtype=np.int64) * 12345,
    ],
    ids=["float-table", "int-column"],
)
async def test_a_chunked_upload_reassembles_exactly_the_same_array(
    tmp_path: Path, values: np.ndarray
) -> None:
    path = tmp_path / "ctl.sock"
    server, got = await _served(path)
    async with trio.open_nursery() as nursery:
        await nursery.start(server.serve)
        request = {"op": "submit", "program": "p", "session": "s"}
        reply = await trio.to_thread.run_sync(
            lambda: control.submit_request(path, request, values, threshold=1000, chunk_bytes=40_000)
        )
        assert reply == {"ok": True, "kind_of_input": "ndarray"}
        (req,) = got
        assert set(req) == {"op", "program", "session", "input"}
        assert req["input"].dtype == values.dtype and np.array_equal(req["input"], values)
        assert server.uploads_held() == (0, 0)
        # below the threshold the input is the plain list of before
        small = values[:5]
        reply = await trio.to_thread.run_sync(lambda: control.submit_request(path, request, small))
        assert reply["kind_of_input"] == "list" and got[1]["input"] == small.tolist()
        nursery.cancel_scope.cancel()


async def test_an_upload_above_the_limit_is_refused_naming_the_limit(tmp_path: Path) -> None:
    path = tmp_path / "ctl.sock"
    server, got = await _served(path, max_upload_values=1000)
    async with trio.open_nursery() as nursery:
        await nursery.start(server.serve)
        values = np.zeros((400, 3))
        with pytest.raises(control.UploadRefused) as info:
            await trio.to_thread.run_sync(
                lambda: control.submit_request(path, {"op": "submit"}, values, threshold=0)
            )
        assert info.value.reply["kind"] == "bad_request"
        assert "an upload of 1200 values is above this daemon's limit of 1000 values per submit" in str(
            info.value
        )
        assert not got and server.uploads_held() == (0, 0)

        # a client that sends more than it announced loses the upload
        stream = await trio.open_unix_socket(str(path))
        async with stream:
            await stream.send_all(frame({"op": "upload_begin", "dtype": "f8", "shape": [2]}))
            assert (await _reply(stream))["ok"]  # type: ignore[index]
            await stream.send_all(frame({"op": "upload_chunk", "data": bytes(24)}))
            too_much = await _reply(stream)
            assert too_much is not None and too_much["kind"] == "bad_request"
            assert "does not fit" in too_much["error"] and "discarded" in too_much["error"]
            await stream.send_all(frame({"op": "submit", "uploaded": True}))
            none = await _reply(stream)
            assert none is not None and "no upload on this connection" in none["error"]
            await stream.send_all(frame({"op": "upload_begin", "dtype": "f8", "shape": [2]}))
            await _reply(stream)
            await stream.send_all(frame({"op": "submit", "uploaded": True}))
            short = await _reply(stream)
            assert short is not None and "the upload is incomplete: 0 of 2 values arrived" in short["error"]
            await stream.send_all(frame({"op": "upload_begin", "dtype": "c16", "shape": [2]}))
            bad = await _reply(stream)
            assert bad is not None and "upload dtype must be one of ['f8', 'i8']" in bad["error"]
        assert not got
        nursery.cancel_scope.cancel()


async def test_a_client_that_disconnects_mid_upload_leaves_nothing(tmp_path: Path) -> None:
    path = tmp_path / "ctl.sock"
    server, got = await _served(path)
    async with trio.open_nursery() as nursery:
        await nursery.start(server.serve)
        stream = await trio.open_unix_socket(str(path))
        await stream.send_all(frame({"op": "upload_begin", "dtype": "f8", "shape": [100_000, 4]}))
        assert (await _reply(stream))["ok"]  # type: ignore[index]
        await stream.send_all(frame({"op": "upload_chunk", "data": np.ones(1000).tobytes()}))
        assert (await _reply(stream)) == {"ok": True, "received": 1000}
        assert server.uploads_held() == (1, 100_000 * 4 * 8)
        await stream.send_all(frame({"op": "upload_chunk", "data": np.ones(1000).tobytes()})[:100])
        await stream.aclose()  # mid-request, mid-upload
        with trio.fail_after(5):
            while server.connections:
                await trio.sleep(0.01)
        gc.collect()
        assert server.uploads_held() == (0, 0) and not got
        nursery.cancel_scope.cancel()


def test_the_apps_check_an_uploaded_array_without_a_loop() -> None:
    from protocols.apps import programs as apps

    table = np.arange(12, dtype=np.float64).reshape(4, 3)
    assert apps.parse_numbers(table) is table  # no copy, no conversion
    prepare = programs.get("stats_mean").prepare
    assert prepare(table, get_field(P127), 3) is table
    bad = table.copy()
    bad[2, 1] = np.nan
    with pytest.raises(programs.InputError, match="row 3: nan is not a finite number"):
        prepare(bad, get_field(P127), 3)
    with pytest.raises(programs.InputError, match="value 2: 2000000000000.0 is not a finite"):
        prepare(np.array([1.0, 2e12]), get_field(P127), 3)
    assert apps.MAX_ELEMENTS >= 21_000_000  # 10^6 rows x 21 columns
    ints = programs.integer_vector(np.array([5, -7], dtype=np.int64), get_field(P61), 3)
    assert ints.dtype == np.int64 and ints.tolist() == [5, -7]
    bound = programs.value_bound(get_field(P61), 3)
    with pytest.raises(programs.InputError, match="value 2 is out of range"):
        programs.integer_vector(np.array([5, bound + 1]), get_field(P61), 3)
    with pytest.raises(programs.InputError, match="value 1 is not an integer"):
        programs.integer_vector(np.array([0.5]), get_field(P61), 3)


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
    early = UseTracked(inner, "job/x")  # type: ignore[arg-type]
    early.compromised()
    assert inner.retired == 0
    late = UseTracked(inner, "job/y")  # type: ignore[arg-type]
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
            "epoch": "4-0123456789abcdef",
            "keys": 5,
            "levels": {"triple": 900, "mask0": 10},
            "watermarks": {"triple": [512, 1024]},
            "per_second": {"triple": 1234.5},
            "generated": {"triple": 5000},
            "failures": ["epoch 3-89abcdef01234567: a batch failed"],
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
    assert "pools (epoch 4-0123456789abcdef, ready)" in text and "512..1024" in text and "1,234" in text
    assert "re-keyed: epoch 3-89abcdef01234567: a batch failed" in text
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


async def test_a_registered_programs_session_options_reach_the_sessions_its_submits_start() -> None:
    """``Registry.register(session=...)``: the daemon's job runner starts the program's sessions with
    those ``Session`` options at every party (``logreg_train`` runs with ``comparison="auto"``); a
    program without them gets the party's own (``"field"``)."""
    from actors.jobs import Jobs

    reg = programs.Registry()

    async def domains(s: Any, values: Any) -> list[str]:
        return [s.comparison, s.comparison_domain, s.truncation_domain]

    reg.register("opts", session={"comparison": "auto"})(domains)
    reg.register("plain")(domains)
    assert programs.REGISTRY.get("logreg_train").session == {"comparison": "auto"}
    with trio.fail_after(60):
        async with actors.local_cluster(3, modulus=P127, preprocessing="dealer") as c:
            jobs = [Jobs(p, reg, get_field(P127), submit_timeout=20.0) for p in c.parties]
            replies: dict[tuple[str, int], Any] = {}
            async with trio.open_nursery() as nursery:
                for j in jobs:
                    await nursery.start(j.serve)

                async def submit(i: int, program: str) -> None:
                    req = {"program": program, "session": f"s-{program}", "input": [1]}
                    replies[program, i] = await jobs[i].submit(req)

                async with trio.open_nursery() as runs:
                    for program in ("opts", "plain"):
                        for i in range(3):
                            runs.start_soon(submit, i, program)
                for j in jobs:
                    j.cancel()
    for i in range(3):
        assert replies["opts", i]["result"] == ["auto", "binary", "loose"], replies["opts", i]
        assert replies["plain", i]["result"] == ["field", "field", "field"], replies["plain", i]
