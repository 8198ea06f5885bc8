"""``spdz party`` daemons as real processes over loopback TLS, driven by ``spdz submit`` / ``spdz status``.

One 3-party cluster is started per module (``spdz keygen`` layout, field p61, small MASCOT pools, free
ports, each daemon with its own fake ``NOTIFY_SOCKET``: party 0's in the abstract namespace) and
shared by the tests that leave it serving; the lifecycle tests (SIGHUP, SIGTERM) start their own
2-party clusters. Waiting on processes is polling with a deadline: these are real processes on a
real clock, and every wait fails with the daemons' logs attached rather than hanging.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import signal
import socket
import ssl
import stat
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from actors import control
from actors.config import Address, Backoff, load_config, write_config
from actors.offline import Watermarks
from actors.pki import TlsFiles, client_context, issue_party, make_cluster

pytestmark = pytest.mark.slow  # real processes or MASCOT: left out of the fast subset

START_TIMEOUT = 40.0
RUN_TIMEOUT = 60.0


def spdz_command() -> list[str]:
    """The ``spdz`` console script of this interpreter's environment, else the module."""
    script = Path(sys.executable).parent / "spdz"
    return [str(script)] if script.exists() else [sys.executable, "-m", "actors.cli"]


def spdz(*args: str, env: dict[str, str] | None = None, log: Path | None = None) -> subprocess.Popen[str]:
    """Start ``spdz ARGS``: output captured, or (``log``) appended to a file."""
    out: Any = open(log, "ab") if log is not None else subprocess.PIPE  # noqa: SIM115 (closed below)
    try:
        return subprocess.Popen(  # noqa: S603 (our own command line)
            [*spdz_command(), *args],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=out,
            text=log is None,
            env=env,
        )
    finally:
        if log is not None:
            out.close()


def spdz_run(*args: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    proc = spdz(*args, env=env)
    try:
        so, se = proc.communicate(timeout=RUN_TIMEOUT)
    except subprocess.TimeoutExpired:
        proc.kill()
        so, se = proc.communicate()
        raise AssertionError(f"spdz {' '.join(args)} hung:\n{so}\n{se}") from None
    return proc.returncode, so, se


def free_ports(k: int) -> list[int]:
    socks = []
    for _ in range(k):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.bind(("127.0.0.1", 0))
        socks.append(s)
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def wait_until(what: str, check: Callable[[], Any], timeout: float, logs: Callable[[], str] = str) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}\n{logs()}")
        time.sleep(0.05)


class NotifySocket:
    """A fake service manager: a datagram socket that records what the daemon sends."""

    def __init__(self, directory: Path, abstract: bool) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        if abstract:
            name = f"spdz-test-{uuid.uuid4().hex}"
            self.sock.bind("\0" + name)
            self.env = "@" + name
        else:
            path = directory / "notify.sock"
            self.sock.bind(str(path))
            self.env = str(path)
        self.sock.setblocking(False)
        self.messages: list[dict[str, str]] = []

    def poll(self) -> list[dict[str, str]]:
        while True:
            try:
                data = self.sock.recv(65536)
            except BlockingIOError:
                return self.messages
            self.messages.append(dict(line.split("=", 1) for line in data.decode().splitlines()))

    def seen(self, key: str, value: str = "1") -> bool:
        return any(m.get(key) == value for m in self.poll())

    def close(self) -> None:
        self.sock.close()


class Daemons:
    """n ``spdz party`` processes of one cluster, with their configs, logs and notify sockets."""

    def __init__(
        self,
        root: Path,
        n: int,
        *,
        grace: float = 20.0,
        pool: Watermarks | None = None,
        metrics: bool = False,
        field: str = "p61",
        party_args: dict[int, tuple[str, ...]] | None = None,
        config: dict[str, Any] | None = None,
        env: dict[int, dict[str, str]] | None = None,
    ) -> None:
        self.root = root
        self.n = n
        self.party_args = party_args or {}
        self.extra_env = env or {}
        make_cluster(root, n)
        ports = free_ports(2 * n)
        self.metrics_ports = ports[n:] if metrics else [None] * n
        marks = pool or Watermarks(
            triple=(512, 1024),
            mask=(128, 512),
            batch={k: 512 for k in ("triple", "mask", "square", "bit", "random")},
        )
        self.configs = []
        for i in range(n):
            path = root / f"party{i}" / "party.toml"
            cfg = load_config(path)
            cfg = dataclasses.replace(
                cfg,
                field=field,
                listen=Address("127.0.0.1", ports[i]),
                peers={j: Address("127.0.0.1", ports[j]) for j in range(n) if j != i},
                control_socket=root / f"party{i}" / "ctl.sock",
                watermarks=marks,
                log_format="json",
                log_level="info",
                reconnect=Backoff(0.05, 0.5),
                metrics_port=self.metrics_ports[i],
            )
            cfg = dataclasses.replace(cfg, **(config or {}))
            write_config(cfg, path)
            self.configs.append(path)
        self.grace = grace
        self.notify = [NotifySocket(root / f"party{i}", abstract=i == 0) for i in range(n)]
        self.procs: list[subprocess.Popen[str] | None] = [None] * n

    def env(self, i: int) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if k not in ("RUNTIME_DIRECTORY", "STATE_DIRECTORY")}
        env.update(NOTIFY_SOCKET=self.notify[i].env, WATCHDOG_USEC="1000000", SPDZ_THREADS="1")
        env.update(self.extra_env.get(i, {}))
        return env

    def log_path(self, i: int) -> Path:
        return self.root / f"party{i}" / "daemon.log"

    def log(self, i: int) -> str:
        p = self.log_path(i)
        return p.read_text(errors="replace") if p.exists() else ""

    def logs(self) -> str:
        return "\n".join(f"---- party {i} log (tail) ----\n{self.log(i)[-3000:]}" for i in range(self.n))

    def start(self, parties: list[int] | None = None) -> None:
        parties = list(range(self.n)) if parties is None else parties
        for i in parties:
            self.notify[i].poll()
            self.notify[i].messages.clear()  # a restart: what the last process said is not READY
            self.procs[i] = spdz(
                "party",
                "--config",
                str(self.configs[i]),
                "--grace",
                str(self.grace),
                *self.party_args.get(i, ()),
                env=self.env(i),
                log=self.log_path(i),
            )
        for i in parties:
            wait_until(f"READY=1 from party {i}", lambda i=i: self._ready(i), START_TIMEOUT, self.logs)

    def _ready(self, i: int) -> bool:
        proc = self.procs[i]
        assert proc is not None
        if proc.poll() is not None:
            raise AssertionError(f"party {i}'s daemon exited with {proc.returncode}\n{self.logs()}")
        return self.notify[i].seen("READY")

    def status(self, i: int) -> dict[str, Any]:
        reply = control.call(self.socket(i), {"op": "status"}, timeout=10)
        assert reply["ok"], reply
        return reply["status"]

    def wait_preprocessing(self) -> None:
        for i in range(self.n):
            wait_until(
                f"party {i}'s preprocessing",
                lambda i=i: self.status(i)["pool"]["ready"],
                START_TIMEOUT,
                self.logs,
            )

    def connect_as(self, party: int, to: int, timeout: float = 10) -> ssl.SSLSocket:
        """A TLS connection to party ``to``'s listener with party ``party``'s own certificate and key:
        what a stray or duplicate of that party, or anyone holding its key, can open."""
        home = self.root / f"party{party}"
        ctx = client_context(TlsFiles(ca=home / "ca.pem", cert=home / "cert.pem", key=home / "key.pem"))
        port = load_config(self.configs[to]).listen.port
        raw = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        try:
            return ctx.wrap_socket(raw)
        except BaseException:
            raw.close()
            raise

    def socket(self, i: int) -> Path:
        return self.root / f"party{i}" / "ctl.sock"

    def submit(self, i: int, program: str, data: Path, *args: str) -> subprocess.Popen[str]:
        cmd = ("submit", "--config", str(self.configs[i]), "--program", program, "--input", str(data))
        return spdz(*cmd, *args, env=self.env(i))

    def finish(self, procs: list[subprocess.Popen[str]]) -> list[tuple[int, str, str]]:
        out = []
        for p in procs:
            try:
                so, se = p.communicate(timeout=RUN_TIMEOUT)
            except subprocess.TimeoutExpired:
                p.kill()
                raise AssertionError(f"spdz submit hung\n{self.logs()}") from None
            out.append((p.returncode, so, se))
        return out

    def run_all(self, program: str, files: list[Path], *args: str) -> list[tuple[int, str, str]]:
        return self.finish([self.submit(i, program, files[i], *args) for i in range(self.n)])

    def call_all(self, requests: list[dict[str, Any] | None]) -> list[dict[str, Any] | None]:
        """Send ``requests[i]`` to party i's control socket, all at once (threads); None: skip."""

        def one(i: int) -> dict[str, Any] | None:
            req = requests[i]
            return None if req is None else control.call(self.socket(i), req, timeout=RUN_TIMEOUT)

        with ThreadPoolExecutor(len(requests)) as pool:
            return list(pool.map(one, range(len(requests))))

    def sum_all(self, session: str | None, values: list[list[int]]) -> list[dict[str, Any]]:
        reqs = [{"op": "submit", "program": "sum", "session": session, "input": v} for v in values]
        return self.call_all(reqs)  # type: ignore[arg-type,return-value]

    def kill(self, i: int) -> None:
        """kill -9: no goodbye to anyone."""
        proc = self.procs[i]
        assert proc is not None
        proc.kill()
        proc.wait()
        self.procs[i] = None

    def terminate(self, i: int, timeout: float = 30.0) -> int:
        proc = self.procs[i]
        assert proc is not None
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        try:
            return proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            raise AssertionError(
                f"party {i} did not stop within {timeout} s of SIGTERM\n{self.logs()}"
            ) from None

    def close(self) -> list[int | None]:
        codes: list[int | None] = []
        for i, proc in enumerate(self.procs):
            codes.append(None if proc is None else self.terminate(i))
        for ns in self.notify:
            ns.close()
        return codes


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def serving(d: Daemons) -> Iterator[Daemons]:
    """A module fixture's body: start ``d``, wait for its preprocessing, yield it, and at the end
    stop it and check that every daemon exited cleanly on SIGTERM."""
    try:
        d.start()
        d.wait_preprocessing()
        yield d
    finally:
        codes = d.close()
    assert codes == [0] * d.n, f"daemons exited with {codes} on SIGTERM\n{d.logs()}"


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemons]:
    yield from serving(Daemons(tmp_path_factory.mktemp("d3"), 3, metrics=True))


@pytest.fixture
def data(tmp_path: Path) -> dict[str, Path]:
    return {
        "a": write(tmp_path / "a.txt", "10\n-3\n\n7\n"),
        "b": write(tmp_path / "b.txt", "100\n200\n"),
        "c": write(tmp_path / "c.csv", "id,age,cost\n1,40,5\n2,71,-2\n3,33,9\n"),
        "c_plain": write(tmp_path / "c.txt", "5\n-2\n9\n"),
        "bad": write(tmp_path / "bad.txt", "1\n2\nabc\n"),
    }


# ------------------------------------------------------------------------------------ the 3-party cluster
def test_every_daemon_told_the_service_manager_it_is_ready(cluster: Daemons) -> None:
    for i in range(3):
        first_ready = next(m for m in cluster.notify[i].poll() if m.get("READY") == "1")
        assert first_ready["STATUS"].startswith(f"party {i}: serving"), first_ready
    assert cluster.notify[0].env.startswith("@")  # the abstract-namespace form works too
    for i in range(3):  # WATCHDOG_USEC=1 s: a ping every half second from each event loop
        wait_until(f"WATCHDOG=1 from party {i}", lambda i=i: cluster.notify[i].seen("WATCHDOG"), 10)


def test_sum_and_mean_over_three_daemons(cluster: Daemons, data: dict[str, Path]) -> None:
    results = cluster.run_all("sum", [data["a"], data["b"], data["c_plain"]], "--session", "sum-1")
    for i, (rc, out, err) in enumerate(results):
        assert (rc, out.strip()) == (0, str(14 + 300 + 12)), f"party {i}: {err}\n{cluster.logs()}"

    procs = [
        cluster.submit(0, "mean", data["a"], "--session", "mean-1"),
        cluster.submit(1, "mean", data["b"], "--session", "mean-1", "--json"),
        cluster.submit(2, "mean", data["c"], "--session", "mean-1", "--column", "cost"),
    ]
    results = cluster.finish(procs)
    assert all(rc == 0 for rc, _, _ in results), results
    assert float(results[0][1]) == pytest.approx(326 / 8)
    full = json.loads(results[1][1])
    assert full == {"mean": 326 / 8, "exact": "163/4", "sum": 326, "count": 8}
    assert results[2][1].strip() == results[0][1].strip()


def test_automatic_session_ids_match_when_every_party_submits_in_order(cluster: Daemons) -> None:
    replies = cluster.sum_all(None, [[300]] * 3)
    assert [(r["ok"], r["session"], r["result"]) for r in replies] == [(True, "auto/sum/1", 900)] * 3, replies
    recent = cluster.status(1)["recent"]
    assert recent[-1]["session"] == "auto/sum/1" and recent[-1]["state"] == "done"


def test_status_shows_links_up_and_pool_levels(cluster: Daemons) -> None:
    rc, text, err = spdz_run("status", "--config", str(cluster.configs[1]))
    assert rc == 0, err
    assert text.startswith("party 1 of 3"), text
    rows = {line.split()[0]: line.split() for line in text.splitlines() if "127.0.0.1:" in line}
    assert rows["0"][2] == "up" and rows["2"][2] == "up", text
    assert "pools (epoch" in text and "triple" in text, text

    rc, out, err = spdz_run("status", "--config", str(cluster.configs[2]), "--json")
    assert rc == 0, err
    st = json.loads(out)
    assert st["party"] == 2 and st["state"] == "serving" and st["uptime"] > 0
    assert {k: v["up"] for k, v in st["links"].items()} == {"0": True, "1": True}
    assert st["pool"]["watermarks"]["triple"] == [512, 1024]
    assert st["pool"]["levels"]["triple"] >= 0 and st["pool"]["generated"]["triple"] >= 512
    assert st["pool"]["per_second"]["triple"] > 0


SCRAPE = b"GET /metrics HTTP/1.1\r\nHost: localhost\r\n\r\n"


def scrape(port: int, request: bytes = SCRAPE) -> tuple[int, str]:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sk:
        sk.sendall(request)
        data = b""
        while chunk := sk.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split()[1]), body.decode()


def test_prometheus_metrics_show_links_pools_and_jobs(cluster: Daemons, data: dict[str, Path]) -> None:
    from prometheus_client.parser import text_string_to_metric_families

    results = cluster.run_all("sum", [data["a"]] * 3, "--session", "metrics-job")  # traffic has moved
    assert all(rc == 0 for rc, _, _ in results), results
    for i in range(3):
        port = cluster.metrics_ports[i]
        assert port is not None
        code, body = scrape(port)
        assert code == 200, body
        got = {
            (s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(body)
            for s in family.samples
        }
        peers = [str(j) for j in range(3) if j != i]
        assert all(got[("spdz_link_up", (("peer", j),))] == 1 for j in peers), body
        assert all(got[("spdz_link_bytes_sent_total", (("peer", j),))] > 0 for j in peers), body
        assert got[("spdz_preprocessing_ready", ())] == 1
        assert got[("spdz_generated_total", (("kind", "triple"),))] >= 512
        assert got[("spdz_generation_rate", (("kind", "triple"),))] > 0
        assert got[("spdz_pool_high_watermark", (("kind", "triple"),))] == 1024
        assert ("spdz_sessions_running", (("kind", "jobs"),)) in got
        assert "share" not in body.lower() and "alpha" not in body.lower()  # counts only, nothing secret
    # the endpoint refuses garbage and keeps serving
    port = cluster.metrics_ports[0]
    assert port is not None
    assert scrape(port, b"\x16\x03\x01 not http\r\n\r\n")[0] == 400
    assert scrape(port, b"GET /secret HTTP/1.1\r\n\r\n")[0] == 404
    assert scrape(port)[0] == 200 and cluster.status(0)["state"] == "serving"


def test_control_sockets_are_private(cluster: Daemons) -> None:
    for i in range(3):
        st = os.lstat(cluster.socket(i))
        assert stat.S_ISSOCK(st.st_mode)
        assert stat.S_IMODE(st.st_mode) == 0o600, oct(st.st_mode)


def test_malformed_input_gives_a_clear_error_and_aborts_the_others(
    cluster: Daemons, data: dict[str, Path]
) -> None:
    results = cluster.run_all("sum", [data["a"], data["bad"], data["b"]], "--session", "bad-1")
    rc, out, err = results[1]
    assert rc == 1 and out == ""
    assert f"{data['bad']}: line 3: 'abc' is not a number" in err, err
    for i in (0, 2):
        rc, out, err = results[i]
        assert rc == 1 and out == "", (i, out, err)
        assert "session 'bad-1' aborted" in err and "party 1 rejected its own input" in err, err
        assert "abc" not in err  # the offending value stays with its owner


def test_out_of_range_input_is_refused_by_the_daemon(cluster: Daemons) -> None:
    reply, *others = cluster.sum_all("range-1", [[1, 2**62], [5], [6]])
    assert reply["ok"] is False and reply["kind"] == "rejected", reply
    assert "value 2 is out of range" in reply["error"] and "aborted at every party" in reply["error"]
    for r in others:
        assert r["kind"] == "abort" and "party 0 rejected its own input" in r["error"], r


def test_a_party_that_never_submits_makes_the_others_abort_after_the_timeout(
    cluster: Daemons, data: dict[str, Path]
) -> None:
    t0 = time.monotonic()
    procs = [cluster.submit(i, "sum", data["b"], "--session", "lonely-1", "--timeout", "1.5") for i in (0, 1)]
    for rc, out, err in cluster.finish(procs):
        assert rc == 1 and out == ""
        assert "party 2 did not join the session within 1.5 s" in err, err
    assert time.monotonic() - t0 < 20


def test_bad_requests_get_clear_errors(cluster: Daemons) -> None:
    sock = cluster.socket(0)

    def ask(req: dict[str, Any]) -> str:
        reply = control.call(sock, req, timeout=10)
        assert reply["ok"] is False, reply
        return reply["error"]

    assert "session id '../x' is not valid" in ask({"op": "submit", "program": "sum", "session": "../x"})
    assert "unknown submit fields ['code']" in ask({"op": "submit", "program": "sum", "code": "print(1)"})
    assert "timeout must be" in ask({"op": "submit", "program": "sum", "session": "t", "timeout": -1})
    assert "unknown operation 'shutdown'" in ask({"op": "shutdown"})
    lonely = {"op": "submit", "program": "sum", "session": "dup-1", "input": [1], "timeout": 0.5}
    assert "parties 1, 2 did not join the session within 0.5 s" in ask(lonely)
    assert "'dup-1' was already submitted to party 0 (failed)" in ask(lonely)


def test_unknown_program_is_refused_at_once_and_keeps_the_session_id(
    cluster: Daemons, data: dict[str, Path]
) -> None:
    """A program name the daemons do not have is refused at once, naming the registered ones, and
    the session id stays free: the same id then runs the right program."""
    replies = cluster.call_all([{"op": "submit", "program": "median", "session": "m-1", "input": [1]}] * 3)
    for r in replies:
        assert r is not None and r["kind"] == "unknown_program", r
        assert "no program named 'median' (registered: bench_mul, " in r["error"], r
        assert ", mean, " in r["error"] and ", sum)" in r["error"], r
    rc, out, err = spdz_run(
        "submit", "--config", str(cluster.configs[0]), "--program", "nosuch", "--session", "m-1",
        "--input", str(data["a"]), env=cluster.env(0),
    )  # fmt: skip
    assert rc == 2 and out == "" and "no program named 'nosuch'" in err and "Traceback" not in err
    replies = cluster.sum_all("m-1", [[1], [2], [3]])
    assert [r["result"] for r in replies] == [6] * 3, replies


def test_garbage_to_the_tls_port_and_the_control_socket_leaves_the_daemon_serving(cluster: Daemons) -> None:
    port = load_config(cluster.configs[1]).listen.port
    for junk in (os.urandom(3000), b"\x16\x03\x01\xff\xff" + b"A" * 5000, b"\xff\xff\xff\xff" * 10):
        with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
            s.sendall(junk)
            s.shutdown(socket.SHUT_WR)
            while s.recv(65536):
                pass
    # a TLS client with a valid certificate (party 0's) whose first record claims 4 GB
    with cluster.connect_as(0, 1) as tls:
        tls.sendall(b"\xff\xff\xff\xff" + os.urandom(1000))
        try:
            while tls.recv(65536):
                pass
        except (ssl.SSLError, ConnectionError):
            pass

    # the control socket: an oversized length, junk bytes, msgpack that is not a request
    def raw_control(payload: bytes) -> dict[str, Any]:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(10)
            s.connect(str(cluster.socket(1)))
            s.sendall(payload)
            head = s.recv(4, socket.MSG_WAITALL)
            body = s.recv(int.from_bytes(head, "big"), socket.MSG_WAITALL)
            return control.unpack_body(body, len(body))

    too_big = raw_control(b"\xff\xff\xff\xff" + b"x" * 100)
    assert too_big["kind"] == "bad_request" and "the limit is" in too_big["error"], too_big
    junk = raw_control(b"\x00\x00\x00\x08" + b"\xc1" * 8)
    assert "not valid msgpack" in junk["error"], junk
    not_map = raw_control(control.HEADER.pack(4) + b"\x93\x01\x02\x03")
    assert 'a map with a string "op"' in not_map["error"], not_map

    replies = cluster.sum_all("after-garbage", [[1], [2], [3]])
    assert [r["result"] for r in replies] == [6] * 3, replies
    st = cluster.status(1)
    assert all(link["up"] for link in st["links"].values())
    assert sum(st["tls"]["listener"]["refused"].values()) >= 3, st["tls"]
    assert st["links"]["0"]["rejected_streams"] >= 1, st["links"]


def test_a_huge_control_request_is_refused_on_its_header(cluster: Daemons) -> None:
    """A 64 MiB request holding 60 M small integers: refused on its header, before any of it is read
    or decoded, and the daemon's memory does not move. (It used to be decoded first: +562 MB RSS.)"""
    proc = cluster.procs[1]
    assert proc is not None
    before = rss_mb(proc.pid)
    values = 60_000_000
    body = b"\xdd" + values.to_bytes(4, "big") + b"\x01" * 4096  # array32 header, first elements
    head = control.HEADER.pack(64 * 1024 * 1024)
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(10)
        s.connect(str(cluster.socket(1)))
        s.sendall(head + body)
        size = int.from_bytes(s.recv(4, socket.MSG_WAITALL), "big")
        reply = control.unpack_body(s.recv(size, socket.MSG_WAITALL), size)
    assert reply["kind"] == "bad_request" and "the limit is 1..8388608 bytes" in reply["error"], reply
    assert rss_mb(proc.pid) < before + 16
    assert cluster.status(1)["state"] == "serving"


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError(f"no VmRSS for pid {pid}")


# ------------------------------------------------------------------------------------ decimal tables
def test_stats_mean_of_csv_tables_over_three_daemons_with_a_chunked_upload(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Three p127 daemons compute per-column means of CSV tables (a header, two columns, decimals).
    Parties 0 and 1 run ``spdz submit`` (0 picks two of three columns with ``--column``); party 2
    runs the same command in this process with the upload threshold at 0, so its table reaches its
    daemon as a chunked upload, whose limit (``--max-input-values 1000``) a second session exceeds."""
    d = Daemons(tmp_path / "d3", 3, field="p127", party_args={2: ("--max-input-values", "1000")})
    rng = np.random.default_rng(11)
    parts = [np.column_stack([rng.normal(2500, 700, k), rng.normal(1.5, 0.8, k)]) for k in (300, 200, 250)]
    files = []
    for i, part in enumerate(parts):
        f = tmp_path / f"p{i}.csv"
        if i == 0:  # an extra column, left out with --column
            extra = np.column_stack([np.arange(len(part)), part])
            np.savetxt(f, extra, delimiter=",", fmt="%.6f", header="id,amount,hours", comments="")
        else:
            np.savetxt(f, part, delimiter=",", fmt="%.6f", header="amount,hours", comments="")
        files.append(f)
    rounded = [np.round(p, 6) for p in parts]
    monkeypatch.setattr(control, "UPLOAD_THRESHOLD", 0)
    monkeypatch.setattr(control, "UPLOAD_CHUNK", 1024)  # several chunks for a few hundred rows
    sent: list[str] = []
    exchange = control._exchange

    def spy(sock: Any, path: Path, request: dict[str, Any], timeout: float | None) -> dict[str, Any]:
        sent.append(request["op"])
        return exchange(sock, path, request, timeout)

    monkeypatch.setattr(control, "_exchange", spy)

    def own(session: str, data: Path) -> int:
        args = argparse.Namespace(
            config=str(d.configs[2]),
            program="stats_mean",
            input=str(data),
            session=session,
            column=None,
            timeout=None,
            json=True,
        )
        return control.cmd_submit(args)

    try:
        d.start()
        d.wait_preprocessing()
        with ThreadPoolExecutor(1) as pool:
            mine = pool.submit(own, "table-1", files[2])
            procs = [
                d.submit(
                    0, "stats_mean", files[0], "--session", "table-1", "--json", "--column", "amount,hours"
                ),
                d.submit(1, "stats_mean", files[1], "--session", "table-1", "--json"),
            ]
            results = d.finish(procs)
            assert mine.result(RUN_TIMEOUT) == 0, f"{capsys.readouterr()}\n{d.logs()}"
        ops = [op for op in sent if op != "status"]  # (the harness's status calls go the same way)
        assert ops == ["upload_begin"] + ["upload_chunk"] * 4 + ["submit"], ops  # 500 values, 128 a chunk
        want = np.concatenate(rounded).mean(axis=0)
        outs = [json.loads(out) for _, out, _ in results] + [json.loads(capsys.readouterr().out)]
        for i, ((rc, _, err), out) in enumerate(zip([*results, (0, "", "")], outs, strict=True)):
            assert rc == 0, f"party {i}: {err}\n{d.logs()}"
            got = np.asarray(out["mean"])
            assert got.shape == (2,) and np.all(np.abs(got - want) <= 1e-3 * np.maximum(1, np.abs(want))), (
                i,
                got,
                want,
            )

        # 600 rows x 2 columns: above party 2's limit, so it refuses, and the others abort
        big = tmp_path / "big.csv"
        np.savetxt(big, np.ones((600, 2)), delimiter=",", fmt="%.1f", header="amount,hours", comments="")
        with ThreadPoolExecutor(1) as pool:
            mine = pool.submit(own, "table-2", big)
            procs = [
                d.submit(0, "stats_mean", files[0], "--session", "table-2", "--column", "amount,hours"),
                d.submit(1, "stats_mean", files[1], "--session", "table-2"),
            ]
            results = d.finish(procs)
            assert mine.result(RUN_TIMEOUT) == 1
        err = capsys.readouterr().err
        assert "an upload of 1200 values is above this daemon's limit of 1000 values per submit" in err, err
        for rc, out, err in results:
            assert rc == 1 and out == "", err
            assert "party 2 rejected its own input" in err, err
    finally:
        codes = d.close()
    assert codes == [0, 0, 0], f"daemons exited with {codes} on SIGTERM\n{d.logs()}"


# ------------------------------------------------------------------------------------ lifecycle
@pytest.fixture
def pair(tmp_path: Path) -> Iterator[Daemons]:
    d = Daemons(tmp_path / "d2", 2, grace=2.0)
    try:
        d.start()
        yield d
    finally:
        for i, proc in enumerate(d.procs):
            if proc is not None and proc.poll() is None:
                d.terminate(i)
        for ns in d.notify:
            ns.close()


def test_sighup_reloads_log_level_and_certificates(pair: Daemons) -> None:
    proc = pair.procs[0]
    assert proc is not None
    path = pair.configs[0]
    good = path.read_text()
    path.write_text(good.replace('level = "info"', 'level = "debug"'))
    issue_party(pair.root, 0, pair.root / "party0", force=True)  # a renewed certificate
    proc.send_signal(signal.SIGHUP)
    wait_until("config_reloaded", lambda: '"config_reloaded"' in pair.log(0), 20, pair.logs)
    line = next(json.loads(x) for x in pair.log(0).splitlines() if '"config_reloaded"' in x)
    assert line["log_level"] == "debug"
    assert pair.log(0).count('"tls_reloaded"') == 2  # the dialer's and the listener's contexts

    path.write_text("party = [")  # a broken config: logged, the running one stays
    proc.send_signal(signal.SIGHUP)
    wait_until("reload_failed", lambda: '"reload_failed"' in pair.log(0), 20, pair.logs)
    path.write_text(good)
    assert pair.status(0)["reloads"] == 1

    replies = pair.sum_all("after-reload", [[1], [2]])
    assert [r["result"] for r in replies] == [3] * 2, replies


def test_sigterm_lets_a_running_session_finish_then_exits_zero(pair: Daemons, tmp_path: Path) -> None:
    files = [write(tmp_path / f"y{i}.txt", f"{10 * (i + 1)}\n") for i in range(2)]
    first = pair.submit(0, "sum", files[0], "--session", "graceful", "--timeout", "30")
    wait_until(
        "the session to start at party 0", lambda: pair.status(0)["sessions"]["jobs"] == 1, 20, pair.logs
    )
    pair.procs[0].send_signal(signal.SIGTERM)  # type: ignore[union-attr]
    wait_until("STOPPING=1", lambda: pair.notify[0].seen("STOPPING"), 10, pair.logs)
    assert pair.status(0)["state"] == "stopping"
    refused = control.call(
        pair.socket(0), {"op": "submit", "program": "sum", "session": "late", "input": [1]}
    )
    assert refused["kind"] == "stopping" and "shutting down" in refused["error"], refused

    second = pair.submit(1, "sum", files[1], "--session", "graceful")
    results = pair.finish([first, second])
    assert [(rc, out.strip()) for rc, out, _ in results] == [(0, "30")] * 2, results
    assert pair.terminate(0) == 0
    assert not pair.socket(0).exists()
    assert '"daemon_stopped"' in pair.log(0)


def test_sigterm_aborts_a_session_that_outlives_the_grace_period(pair: Daemons, tmp_path: Path) -> None:
    f = write(tmp_path / "z.txt", "5\n")
    alone = pair.submit(1, "sum", f, "--session", "never", "--timeout", "60")
    wait_until(
        "the session to start at party 1", lambda: pair.status(1)["sessions"]["jobs"] == 1, 20, pair.logs
    )
    t0 = time.monotonic()
    proc = pair.procs[1]
    assert proc is not None
    proc.send_signal(signal.SIGINT)  # Ctrl-C in a terminal: the same graceful stop as SIGTERM
    assert proc.wait(30) == 0
    assert time.monotonic() - t0 < 15  # grace is 2 s, then the abort notices (at most 5 s each)
    ((rc, out, err),) = pair.finish([alone])
    assert rc == 1 and out == ""
    assert "party 1's daemon stopped before session 'never' finished" in err, err
    assert pair.notify[1].seen("STOPPING")
    assert '"daemon_aborting_sessions"' in pair.log(1)
    assert pair.status(0)["state"] == "serving"  # the peer carries on without party 1


def test_a_party_whose_peers_are_down_still_becomes_ready(tmp_path: Path) -> None:
    d = Daemons(tmp_path / "alone", 2)
    try:
        d.start([0])  # READY=1 with no peer: systemd must not kill a party started first
        st = d.status(0)
        assert st["state"] == "serving" and not st["links"]["1"]["up"] and not st["pool"]["ready"]
        assert "links 0/1 up; preprocessing setting up" in next(
            m["STATUS"] for m in d.notify[0].poll() if m.get("READY") == "1"
        )
        reply = control.call(
            d.socket(0), {"op": "submit", "program": "sum", "session": "s", "input": [1], "timeout": 1}
        )
        assert reply["kind"] == "not_ready", reply
        assert (
            "party 0's preprocessing is not ready after 1 s (links to parties 1 are down)" in reply["error"]
        )
        t0 = time.monotonic()
        assert d.terminate(0) == 0
        stopped = time.monotonic() - t0
        print(f"stopped in {stopped:.2f} s")
        assert stopped < 1.0, f"a daemon with no sessions and its peer down took {stopped:.1f} s to stop"
    finally:
        assert d.close() == [0, None]


def test_a_second_daemon_for_the_same_party_refuses_to_start(pair: Daemons) -> None:
    rc, _, err = spdz_run("party", "--config", str(pair.configs[0]), env=pair.env(0))
    assert rc == 2, err
    assert "another daemon is already serving the control socket" in err
    assert pair.status(0)["state"] == "serving"  # the first one is untouched


def test_missing_config_is_a_clear_error(tmp_path: Path) -> None:
    rc, _, err = spdz_run("party", "--config", str(tmp_path / "nope.toml"))
    assert rc == 2 and "config file does not exist" in err, err
