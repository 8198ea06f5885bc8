"""Party configuration: one TOML file per party, read with the standard library's ``tomllib``.

``spdz keygen`` writes one file per party (``party<i>/party.toml``) beside that party's certificate and
key; ``spdz party --config FILE`` and ``spdz submit --config FILE`` read it. Loading is strict on
purpose: a misspelt key silently replaced by a default would give a daemon that listens on the wrong
port or trusts the wrong files, so unknown keys are errors, and every ``ConfigError`` names the file,
the key and what was expected. The TLS files are checked too (they exist, the key is mode 0600, the
certificate is signed by the CA, names this party and is within its validity), so that a daemon fails
at start with a sentence rather than later with a handshake error at a peer.

Layout (what ``write_config`` writes; the tables and keys marked optional may be left out)::

    party = 0                    # this party's id: 0 <= party < parties
    parties = 3                  # n, the number of parties in the cluster (at least 2)
    field = "p127"               # optional: "p127" (2^127-1, default) or "p61" (2^61-1)
    preprocessing = "mascot"     # optional: "mascot" (default) or "dealer", which is INSECURE (the
    insecure_dealer = false      #   dealer knows every secret): accepted only with insecure_dealer = true
    ot_extension = "softspoken"  # optional: MASCOT's OT extension, "softspoken" (default: KOS's speed at
    #                            #   half the bytes per OT) or "kos"; the same at every party
    peer_timeout = 30.0          # optional: seconds to wait for a peer before giving up on it
    idle_timeout = 30.0          # optional: seconds of silence (no data, no heartbeat) after which a
    #                            #   connection counts as dead; a frozen peer is given up after
    #                            #   idle_timeout + peer_timeout
    metrics_port = 0             # optional: Prometheus metrics at http://127.0.0.1:PORT/metrics; 0 = off
    king_min = 65536             # optional: openings of at least this many elements go through per-range
    #                            #   kings (a third fewer bytes at n = 3, one more round); raise it on
    #                            #   high-latency links, 0 = never. Every party must use the same value.
    # control_socket = "..."     # optional: the control endpoint's Unix socket; default
    #                            #   $RUNTIME_DIRECTORY/spdz-party<id>.sock, else that name beside this file
    # state_dir = "state"        # optional: default $STATE_DIRECTORY, else "state" beside this file

    [listen]                     # where this party accepts its peers' connections
    host = "127.0.0.1"
    port = 7700

    [tls]                        # relative paths are resolved against this file's directory
    ca = "ca.pem"                # the cluster CA certificate
    cert = "cert.pem"            # this party's certificate (URI SAN spdz://party/<party>)
    key = "key.pem"              # this party's private key: mode 0600

    [peers.1]                    # one table per OTHER party, keyed by its id: where to dial it
    host = "127.0.0.1"
    port = 7701

    [peers.2]
    host = "127.0.0.1"
    port = 7702

    [log]                        # optional
    level = "info"               # debug | info | warning | error | critical
    format = "console"           # console | json

    [reconnect]                  # optional: backoff between reconnection attempts, seconds, doubling
    initial = 0.5
    max = 30.0

    [pool]                       # optional: preprocessing pool watermarks [low, high] per kind
    triple = [20000, 60000]      #   (actors.offline.Watermarks: generate below low, stop at high)
    mask = [2000, 8000]
    square = [0, 0]
    bit = [0, 0]
    random = [0, 0]
    and_triple = [0, 0]          #   binary material (docs/offline.md): AND triples, daBits, and
    dabit = [0, 0]               #   edaBits of any bit length k, "edabit:<k>" or "loose:<k>" (quoted),
    # "edabit:32" = [0, 0]       #   e.g. this; [0, 0] = made on demand only, when a session waits

    [pool.batch]                 # optional: how many of each kind one MASCOT batch makes
    triple = 8192
    mask = 4096
    square = 4096
    bit = 4096
    random = 4096
    and_triple = 65536           #   binary kinds: by name, or "edabit" for every "edabit:<k>"
    dabit = 8192
    edabit = 1024

    [memory]                     # optional: this party's memory bounds for preprocessing, in MiB
    pool_mb = 256                #   material made ahead of use: refills stop where the pools would
    #                            #   pass it (the rest of a planned job is made while it runs)
    batch_mb = 640               #   one MASCOT batch's estimated working set: batch counts are cut to
    #                            #   fit it (at least what 1,024 items need at this n: checked here).
    #                            #   Every party should use the same values.
"""

from __future__ import annotations

import dataclasses
import math
import os
import re
import tomllib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from protocols.errors import ConfigError, PeerAuthError
from protocols.field import get_field
from protocols.online import DEFAULT_KING_MIN
from protocols.ot.extension import DEFAULT as DEFAULT_OT
from protocols.ot.extension import EXTENSIONS as OT_EXTENSIONS
from protocols.preprocessing import mixed

from .offline import MIN_POOL_BYTES, Watermarks, check_memory
from .peerlink import LinkConfig
from .pki import (
    TlsFiles,
    check_host,
    load_cert,
    load_key,
    party_id_from_cert,
    verify_issued_by,
    write_atomic,
)

FIELDS = ("p127", "p61")
PREPROCESSING = ("mascot", "dealer")
LOG_LEVELS = ("debug", "info", "warning", "error", "critical")
LOG_FORMATS = ("console", "json")
POOL_KINDS = ("triple", "mask", "square", "bit", "random")

_TOP_KEYS = (
    "party",
    "parties",
    "field",
    "preprocessing",
    "insecure_dealer",
    "ot_extension",
    "peer_timeout",
    "idle_timeout",
    "metrics_port",
    "king_min",
    "control_socket",
    "state_dir",
    "listen",
    "tls",
    "peers",
    "log",
    "reconnect",
    "pool",
    "memory",
    "budget",
)
_ID_RE = re.compile(r"0|[1-9][0-9]{0,8}")
_MISSING: Any = object()


@dataclass(frozen=True, slots=True)
class Address:
    """A TCP endpoint: where this party listens, or where it dials a peer."""

    host: str
    port: int


@dataclass(frozen=True, slots=True)
class Backoff:
    """Reconnection delays: start at ``initial`` seconds, double after each failure, cap at ``max``."""

    initial: float = 0.5
    max: float = 30.0


@dataclass(frozen=True)
class Budget:
    """A privacy budget, ``(epsilon, delta)`` for everything ever released about one dataset
    (``[budget.datasets.<name>]``; enforced by ``actors.budget.BudgetLedger``)."""

    epsilon: float
    delta: float

    def __post_init__(self) -> None:
        if not self.epsilon > 0 or not 0 < self.delta < 1:
            raise ValueError(
                f"a budget needs epsilon > 0 and 0 < delta < 1, got {self.epsilon!r}, {self.delta!r}"
            )


@dataclass(frozen=True)
class PartyConfig:
    """One party's validated configuration; paths are absolute. Build it with ``load_config``."""

    party: int
    n: int
    listen: Address
    peers: dict[int, Address]
    tls: TlsFiles
    control_socket: Path
    state_dir: Path
    field: str = "p127"
    preprocessing: str = "mascot"
    insecure_dealer: bool = False
    ot_extension: str = DEFAULT_OT
    watermarks: Watermarks = dataclasses.field(default_factory=Watermarks)
    log_level: str = "info"
    log_format: str = "console"
    peer_timeout: float = 30.0
    idle_timeout: float = 30.0
    reconnect: Backoff = Backoff()
    metrics_port: int | None = None
    king_min: int = DEFAULT_KING_MIN
    budgets: dict[str, Budget] = dataclasses.field(default_factory=dict)
    budget_ledger: Path | None = None  # default: state_dir / "budget.db"
    source: Path | None = dataclasses.field(default=None, compare=False)

    @property
    def ledger_path(self) -> Path:
        """Where this party's privacy budget ledger lives (``[budget] ledger``)."""
        return self.budget_ledger or self.state_dir / "budget.db"

    @classmethod
    def for_cluster(
        cls,
        *,
        party: int,
        n: int,
        hosts: Sequence[str],
        ports: Sequence[int],
        listen_host: str,
        tls: TlsFiles,
        config_dir: Path,
        **options: Any,
    ) -> PartyConfig:
        """The configuration ``spdz keygen`` writes for ``party`` of a cluster at ``hosts``/``ports``."""
        peers = {j: Address(hosts[j], ports[j]) for j in range(n) if j != party}
        return cls(
            party=party,
            n=n,
            listen=Address(listen_host, ports[party]),
            peers=peers,
            tls=tls,
            control_socket=default_control_socket(config_dir, party),
            state_dir=default_state_dir(config_dir),
            **options,
        )


def _systemd_dir(var: str) -> Path | None:
    """The first entry of a systemd ``*_DIRECTORY`` variable (it may list several, ':'-separated)."""
    value = os.environ.get(var, "")
    first = value.split(":")[0]
    return Path(first) if first else None


def default_control_socket(config_dir: Path, party: int) -> Path:
    """``$RUNTIME_DIRECTORY/spdz-party<id>.sock`` under systemd, else beside the config file."""
    return (_systemd_dir("RUNTIME_DIRECTORY") or Path(config_dir)) / f"spdz-party{party}.sock"


def default_state_dir(config_dir: Path) -> Path:
    """``$STATE_DIRECTORY`` under systemd, else ``state`` beside the config file."""
    return _systemd_dir("STATE_DIRECTORY") or Path(config_dir) / "state"


# ---------------------------------------------------------------------------------------- reading
def _describe(v: Any) -> str:
    if isinstance(v, bool):
        return f"a boolean ({str(v).lower()})"
    if isinstance(v, int):
        return f"an integer ({v})"
    if isinstance(v, float):
        return f"a float ({v})"
    if isinstance(v, str):
        return f"a string ({v!r})"
    if isinstance(v, dict):
        return "a table"
    if isinstance(v, list):
        return "an array"
    return f"a {type(v).__name__}"


class _Reader:
    """Typed access to one parsed TOML document, with errors that name the file and the dotted key."""

    def __init__(self, path: Path) -> None:
        self.file = path
        self.dir = path.parent

    def error(self, key: str, message: str) -> ConfigError:
        return ConfigError(f"{self.file}: key '{key}': {message}")

    def only(self, table: dict[str, Any], known: Sequence[str], prefix: str = "") -> None:
        unknown = [k for k in table if k not in known]
        if unknown:
            names = ", ".join(f"'{prefix}{k}'" for k in unknown)
            raise ConfigError(
                f"{self.file}: unknown key{'s' if len(unknown) > 1 else ''} {names} "
                f"(known here: {', '.join(known)})"
            )

    def get(
        self,
        table: dict[str, Any],
        name: str,
        key: str,
        check: Callable[[Any], bool],
        expected: str,
        default: Any = _MISSING,
    ) -> Any:
        if name not in table:
            if default is _MISSING:
                raise self.error(key, f"missing (expected {expected})")
            return default
        value = table[name]
        if not check(value):
            raise self.error(key, f"expected {expected}, got {_describe(value)}")
        return value

    def table(self, parent: dict[str, Any], name: str, key: str, required: bool = False) -> dict[str, Any]:
        if name not in parent:
            if required:
                raise self.error(key, "missing table")
            return {}
        value = parent[name]
        if not isinstance(value, dict):
            raise self.error(key, f"expected a table [{key}], got {_describe(value)}")
        return value

    def integer(
        self, t: dict[str, Any], name: str, key: str, lo: int, hi: int, default: Any = _MISSING
    ) -> int:
        return self.get(
            t, name, key, lambda v: _is_int(v) and lo <= v <= hi, f"an integer in {lo}..{hi}", default
        )

    def number(self, t: dict[str, Any], name: str, key: str, default: float) -> float:
        ok = lambda v: (_is_int(v) or isinstance(v, float)) and math.isfinite(v) and v > 0  # noqa: E731
        return float(self.get(t, name, key, ok, "a positive number of seconds", default))

    def choice(
        self, t: dict[str, Any], name: str, key: str, options: Sequence[str], default: Any = _MISSING
    ) -> str:
        expected = " or ".join(f'"{o}"' for o in options)
        return self.get(t, name, key, lambda v: isinstance(v, str) and v in options, expected, default)

    def host(self, t: dict[str, Any], name: str, key: str) -> str:
        value = self.get(t, name, key, lambda v: isinstance(v, str), "a host name or IP address")
        try:
            return check_host(value)
        except ConfigError as e:
            raise self.error(key, str(e)) from None

    def path(self, t: dict[str, Any], name: str, key: str, default: Any = _MISSING) -> Path:
        value = self.get(
            t, name, key, lambda v: isinstance(v, str) and v != "", "a non-empty path string", default
        )
        if isinstance(value, Path):
            return value
        p = Path(value).expanduser()
        return p if p.is_absolute() else self.dir / p


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def load_config(path: Path | str, *, check_files: bool = True) -> PartyConfig:
    """Read and validate a party's TOML file; every problem is a ``ConfigError`` naming file and key.

    ``check_files=False`` skips the TLS file checks (existence, 0600 key, chain, party id, validity)
    for tools that only need the addresses, such as ``spdz submit`` on a machine without the keys.
    """
    path = Path(path).expanduser().absolute()
    try:
        with open(path, "rb") as f:
            doc = tomllib.load(f)
    except FileNotFoundError:
        raise ConfigError(f"{path}: config file does not exist") from None
    except OSError as e:
        raise ConfigError(f"{path}: cannot read config file: {e.strerror or e}") from None
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{path}: not valid TOML: {e}") from None
    r = _Reader(path)
    r.only(doc, _TOP_KEYS)

    n = r.integer(doc, "parties", "parties", 2, 10**6)
    party = r.integer(doc, "party", "party", 0, 10**9)
    if party >= n:
        raise r.error("party", f"party id {party} is out of range: ids are 0..{n - 1} (parties = {n})")

    field = r.choice(doc, "field", "field", FIELDS, "p127")
    preprocessing = r.choice(doc, "preprocessing", "preprocessing", PREPROCESSING, "mascot")
    insecure_dealer = r.get(
        doc, "insecure_dealer", "insecure_dealer", lambda v: isinstance(v, bool), "true or false", False
    )
    if preprocessing == "dealer" and not insecure_dealer:
        raise r.error(
            "preprocessing",
            '"dealer" is an INSECURE trusted dealer that knows every secret (for tests only); '
            'use "mascot", or also set insecure_dealer = true if this cluster never sees real data',
        )
    peer_timeout = r.number(doc, "peer_timeout", "peer_timeout", 30.0)
    idle_timeout = r.number(doc, "idle_timeout", "idle_timeout", 30.0)
    heartbeat = LinkConfig.heartbeat
    if not idle_timeout > heartbeat:
        raise r.error("idle_timeout", f"must be longer than the links' heartbeat ({heartbeat:g} s)")
    metrics = r.integer(doc, "metrics_port", "metrics_port", 0, 65535, 0)
    king_min = r.integer(doc, "king_min", "king_min", 0, 2**40, DEFAULT_KING_MIN)

    listen_t = r.table(doc, "listen", "listen", required=True)
    r.only(listen_t, ("host", "port"), "listen.")
    listen = Address(
        r.host(listen_t, "host", "listen.host"), r.integer(listen_t, "port", "listen.port", 1, 65535)
    )

    peers = _read_peers(r, doc, party, n)
    _check_ports(r, listen, peers, metrics)

    tls_t = r.table(doc, "tls", "tls", required=True)
    r.only(tls_t, ("ca", "cert", "key"), "tls.")
    tls = TlsFiles(
        ca=r.path(tls_t, "ca", "tls.ca"),
        cert=r.path(tls_t, "cert", "tls.cert"),
        key=r.path(tls_t, "key", "tls.key"),
    )

    log_t = r.table(doc, "log", "log")
    r.only(log_t, ("level", "format"), "log.")
    log_level = r.choice(log_t, "level", "log.level", LOG_LEVELS, "info")
    log_format = r.choice(log_t, "format", "log.format", LOG_FORMATS, "console")

    rec_t = r.table(doc, "reconnect", "reconnect")
    r.only(rec_t, ("initial", "max"), "reconnect.")
    backoff = Backoff(
        r.number(rec_t, "initial", "reconnect.initial", 0.5), r.number(rec_t, "max", "reconnect.max", 30.0)
    )
    if backoff.max < backoff.initial:
        raise r.error(
            "reconnect.max", f"must be at least reconnect.initial ({backoff.initial}), got {backoff.max}"
        )

    budgets, ledger = _read_budget(r, doc)
    cfg = PartyConfig(
        party=party,
        n=n,
        listen=listen,
        peers=peers,
        tls=tls,
        control_socket=r.path(
            doc, "control_socket", "control_socket", default_control_socket(path.parent, party)
        ),
        state_dir=r.path(doc, "state_dir", "state_dir", default_state_dir(path.parent)),
        field=field,
        preprocessing=preprocessing,
        insecure_dealer=insecure_dealer,
        ot_extension=r.choice(doc, "ot_extension", "ot_extension", tuple(sorted(OT_EXTENSIONS)), DEFAULT_OT),
        watermarks=_read_memory(r, doc, _read_pool(r, doc, field, n), field, n),
        log_level=log_level,
        log_format=log_format,
        peer_timeout=peer_timeout,
        idle_timeout=idle_timeout,
        reconnect=backoff,
        metrics_port=metrics or None,
        king_min=king_min,
        budgets=budgets,
        budget_ledger=ledger,
        source=path,
    )
    if check_files:
        check_tls_files(cfg, r)
    return cfg


def _read_peers(r: _Reader, doc: dict[str, Any], party: int, n: int) -> dict[int, Address]:
    table = r.table(doc, "peers", "peers", required=True)
    peers: dict[int, Address] = {}
    for name, value in table.items():
        key = f"peers.{name}"
        if not _ID_RE.fullmatch(name):
            raise r.error(
                key, f"peer tables are named by party id (a decimal number 0..{n - 1}), got {name!r}"
            )
        pid = int(name)
        if pid >= n:
            raise r.error(key, f"party {pid} is out of range: ids are 0..{n - 1} (parties = {n})")
        if pid == party:
            raise r.error(key, f"this is the party's own id (party = {party}); peers lists only the others")
        if not isinstance(value, dict):
            raise r.error(key, f"expected a table with host and port, got {_describe(value)}")
        r.only(value, ("host", "port"), key + ".")
        peers[pid] = Address(
            r.host(value, "host", key + ".host"), r.integer(value, "port", key + ".port", 1, 65535)
        )
    others = [j for j in range(n) if j != party]
    missing = [j for j in others if j not in peers]
    if missing:
        raise r.error(
            "peers",
            f"missing peer{'s' if len(missing) > 1 else ''} {', '.join(map(str, missing))}: "
            f"peers must list exactly the other parties ({', '.join(map(str, others))})",
        )
    return dict(sorted(peers.items()))


def _check_ports(r: _Reader, listen: Address, peers: dict[int, Address], metrics: int) -> None:
    """Two parties on one host and port would dial the same daemon: one of them would be unreachable."""
    seen: dict[tuple[str, int], str] = {(listen.host.lower(), listen.port): "listen"}
    for pid, a in peers.items():
        key = f"peers.{pid}"
        other = seen.setdefault((a.host.lower(), a.port), key)
        if other != key:
            raise r.error(
                f"{key}.port", f"{key} and {other} both use {a.host}:{a.port}; ports on one host must differ"
            )
    if metrics and metrics == listen.port:
        raise r.error(
            "metrics_port", f"{metrics} is also listen.port; give the metrics endpoint its own port"
        )


def _mixed_key(r: _Reader, key: str, name: str, field: str, n: int) -> None:
    """A binary kind's name as a ``[pool]`` key: known, and a bit length this field and ``n`` allow."""
    why = mixed.invalid(name, 1, get_field(field), n)
    if why is not None:
        raise r.error(key, f"{why} (binary kinds: {', '.join(_mixed_names())})")


def _mixed_names() -> list[str]:
    names = [k.name(32) if k.sized else k.name() for k in mixed.KINDS.values() if k.owner is None]
    return [*names, f"{mixed.OWNED}<party>:<products per group>"]


def _read_pool(r: _Reader, doc: dict[str, Any], field: str = "p127", n: int = 3) -> Watermarks:
    pool_t = r.table(doc, "pool", "pool")
    unsized = [k.family for k in mixed.KINDS.values() if not k.sized]
    sized = [k for k in pool_t if mixed.SEP in k]  # "edabit:32": checked below
    r.only(pool_t, (*POOL_KINDS, *unsized, *sized, "batch"), "pool.")
    base = Watermarks()
    marks: dict[str, Any] = {}
    binary: dict[str, tuple[int, int]] = {}
    ok = lambda v: isinstance(v, list) and len(v) == 2 and all(_is_int(x) and x >= 0 for x in v)  # noqa: E731
    for kind in (*POOL_KINDS, *unsized, *sized):
        key = f"pool.{kind}" if mixed.SEP not in kind else f'pool."{kind}"'
        if kind not in POOL_KINDS:
            _mixed_key(r, key, kind, field, n)
        low, high = r.get(
            pool_t, kind, key, ok, "[low, high], two non-negative integers", list(base.of(kind))
        )
        if low > high:
            raise r.error(key, f"low watermark {low} is above high watermark {high}")
        if kind in POOL_KINDS:
            marks[kind] = (low, high)
        elif high:  # [0, 0] is the default: made on demand only
            binary[kind] = (low, high)
    batch_t = r.table(pool_t, "batch", "pool.batch")
    families = list(mixed.KINDS)
    sized_batches = [k for k in batch_t if mixed.SEP in k]
    r.only(batch_t, (*POOL_KINDS, *families, *sized_batches), "pool.batch.")
    batch = dict(base.batch)
    for kind in (*POOL_KINDS, *families, *sized_batches):
        key = f"pool.batch.{kind}" if mixed.SEP not in kind else f'pool.batch."{kind}"'
        if kind in sized_batches:
            _mixed_key(r, key, kind, field, n)
        if kind in batch_t or kind in POOL_KINDS:
            batch[kind] = r.integer(batch_t, kind, key, 1, 1 << 24, base.batch_of(kind))
    return Watermarks(**marks, mixed=binary, batch=batch)


def _read_memory(r: _Reader, doc: dict[str, Any], marks: Watermarks, field: str, n: int) -> Watermarks:
    """``[memory]``: the pools' and a batch's byte bounds, in MiB (see ``actors.offline``)."""
    mem_t = r.table(doc, "memory", "memory")
    r.only(mem_t, ("pool_mb", "batch_mb"), "memory.")
    mib = 1 << 20
    low = MIN_POOL_BYTES // mib
    pool = r.integer(mem_t, "pool_mb", "memory.pool_mb", low, 1 << 24, marks.pool_bytes // mib)
    batch = r.integer(mem_t, "batch_mb", "memory.batch_mb", 1, 1 << 24, marks.batch_bytes // mib)
    marks = dataclasses.replace(marks, pool_bytes=pool * mib, batch_bytes=batch * mib)
    try:
        check_memory(get_field(field), n, marks)
    except ConfigError as e:
        raise r.error("memory.batch_mb", str(e)) from None
    return marks


_DATASET_RE = re.compile(r"[A-Za-z0-9_.-]{1,64}")


def _read_budget(r: _Reader, doc: dict[str, Any]) -> tuple[dict[str, Budget], Path | None]:
    """``[budget]``: the ledger's path and one ``(epsilon, delta)`` budget per dataset
    (``[budget.datasets.<name>]``), for differentially private outputs (``actors.budget``)."""
    bud_t = r.table(doc, "budget", "budget")
    r.only(bud_t, ("ledger", "datasets"), "budget.")
    ledger = r.path(bud_t, "ledger", "budget.ledger") if "ledger" in bud_t else None
    sets = r.table(bud_t, "datasets", "budget.datasets")
    budgets: dict[str, Budget] = {}
    for name, value in sets.items():
        key = f"budget.datasets.{name}"
        if not _DATASET_RE.fullmatch(name):
            raise r.error(key, "a dataset name is 1 to 64 letters, digits, '_', '.' or '-'")
        if not isinstance(value, dict):
            raise r.error(key, "must be a table with epsilon and delta")
        r.only(value, ("epsilon", "delta"), key + ".")
        if "epsilon" not in value or "delta" not in value:
            raise r.error(key, "needs both epsilon and delta")
        ok = lambda v: (_is_int(v) or isinstance(v, float)) and math.isfinite(v) and v > 0  # noqa: E731
        eps = float(r.get(value, "epsilon", key + ".epsilon", ok, "a positive number"))
        delta = float(r.get(value, "delta", key + ".delta", ok, "a positive number below 1"))
        try:
            budgets[name] = Budget(eps, delta)
        except ValueError as e:
            raise r.error(key, str(e)) from None
    return budgets, ledger


def check_tls_files(cfg: PartyConfig, r: _Reader | None = None) -> None:
    """The TLS files exist, the key is private and matches the certificate, the CA signed it for us."""
    r = r or _Reader(cfg.source or Path("<config>"))
    try:
        ca = load_cert(cfg.tls.ca)
    except ConfigError as e:
        raise r.error("tls.ca", str(e)) from None
    try:
        cert = load_cert(cfg.tls.cert)
    except ConfigError as e:
        raise r.error("tls.cert", str(e)) from None
    try:
        key = load_key(cfg.tls.key)
    except ConfigError as e:
        raise r.error("tls.key", str(e)) from None
    if not verify_issued_by(cert, ca):
        raise r.error(
            "tls.cert",
            f"{cfg.tls.cert} (issuer {cert.issuer.rfc4514_string()!r}) is not signed by the CA in "
            f"{cfg.tls.ca} ({ca.subject.rfc4514_string()!r}); peers would refuse it",
        )
    try:
        pid = party_id_from_cert(cert)
    except PeerAuthError as e:
        raise r.error("tls.cert", f"{cfg.tls.cert}: {e}") from None
    if pid != cfg.party:
        raise r.error(
            "tls.cert",
            f"{cfg.tls.cert} is the certificate of party {pid}, but this file configures party {cfg.party}",
        )
    now = datetime.now(UTC)
    if now > cert.not_valid_after_utc:
        raise r.error("tls.cert", f"{cfg.tls.cert} expired on {cert.not_valid_after_utc:%Y-%m-%d %H:%M} UTC")
    if now < cert.not_valid_before_utc:
        raise r.error(
            "tls.cert", f"{cfg.tls.cert} is not valid before {cert.not_valid_before_utc:%Y-%m-%d %H:%M} UTC"
        )
    if key.public_key() != cert.public_key():
        raise r.error("tls.key", f"{cfg.tls.key} is not the private key of the certificate {cfg.tls.cert}")


# ---------------------------------------------------------------------------------------- writing
def _toml_str(s: str) -> str:
    """A TOML basic string: quotes, backslashes and control characters escaped."""
    out = ['"']
    for ch in s:
        code = ord(ch)
        if ch in '"\\':
            out.append("\\" + ch)
        elif ch in "\b\t\n\f\r":
            out.append({"\b": "\\b", "\t": "\\t", "\n": "\\n", "\f": "\\f", "\r": "\\r"}[ch])
        elif code < 0x20 or code == 0x7F:
            out.append(f"\\u{code:04x}")
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


def _toml_key(k: str) -> str:
    return k if re.fullmatch(r"[A-Za-z0-9_-]+", k) else _toml_str(k)


def _toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        if not math.isfinite(v):
            raise ConfigError(f"cannot write the non-finite number {v} to a config")
        return repr(v)
    if isinstance(v, str):
        return _toml_str(v)
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    raise TypeError(f"no TOML form for {type(v).__name__}")


def _rel(path: Path, base: Path) -> str:
    """``path`` relative to the config's directory if inside it (the directory can move), else absolute."""
    path = Path(path).absolute()
    return str(path.relative_to(base)) if path.is_relative_to(base) else str(path)


def render_config(cfg: PartyConfig, path: Path) -> str:
    """The TOML text ``write_config`` writes for ``cfg`` at ``path`` (layout: this module's docstring)."""
    base = Path(path).absolute().parent
    lines = [
        "# trio-spdz party configuration (layout and meaning of every key: actors/config.py)",
        f"party = {cfg.party}",
        f"parties = {cfg.n}",
        f"field = {_toml_str(cfg.field)}",
        f"preprocessing = {_toml_str(cfg.preprocessing)}",
        f"insecure_dealer = {_toml_value(cfg.insecure_dealer)}",
        f"ot_extension = {_toml_str(cfg.ot_extension)}",
        f"peer_timeout = {_toml_value(float(cfg.peer_timeout))}",
        f"idle_timeout = {_toml_value(float(cfg.idle_timeout))}",
        f"metrics_port = {cfg.metrics_port or 0}  # 0 = off",
        f"king_min = {cfg.king_min}  # openings from this size go through kings; 0 = never",
    ]
    if cfg.control_socket == default_control_socket(base, cfg.party):
        lines.append(
            "# control_socket: default ($RUNTIME_DIRECTORY/spdz-party<id>.sock, else beside this file)"
        )
    else:
        lines.append(f"control_socket = {_toml_str(_rel(cfg.control_socket, base))}")
    if cfg.state_dir == default_state_dir(base):
        lines.append('# state_dir: default ($STATE_DIRECTORY, else "state" beside this file)')
    else:
        lines.append(f"state_dir = {_toml_str(_rel(cfg.state_dir, base))}")
    lines += ["", "[listen]", f"host = {_toml_str(cfg.listen.host)}", f"port = {cfg.listen.port}", ""]
    lines += [
        "[tls]  # relative paths are resolved against this file's directory",
        f"ca = {_toml_str(_rel(cfg.tls.ca, base))}",
        f"cert = {_toml_str(_rel(cfg.tls.cert, base))}",
        f"key = {_toml_str(_rel(cfg.tls.key, base))}",
    ]
    for pid, a in sorted(cfg.peers.items()):
        lines += ["", f"[peers.{pid}]", f"host = {_toml_str(a.host)}", f"port = {a.port}"]
    lines += ["", "[log]", f"level = {_toml_str(cfg.log_level)}", f"format = {_toml_str(cfg.log_format)}"]
    lines += [
        "",
        "[reconnect]",
        f"initial = {_toml_value(float(cfg.reconnect.initial))}",
        f"max = {_toml_value(float(cfg.reconnect.max))}",
    ]
    marks = cfg.watermarks
    unsized = [k.family for k in mixed.KINDS.values() if not k.sized]
    pool_kinds = [*POOL_KINDS, *dict.fromkeys([*unsized, *sorted(marks.mixed)])]
    lines += ["", "[pool]"] + [f"{_toml_key(k)} = {_toml_value(list(marks.of(k)))}" for k in pool_kinds]
    batch_kinds = [*POOL_KINDS, *(k for k in marks.batch if k not in POOL_KINDS)]
    lines += ["", "[pool.batch]"] + [f"{_toml_key(k)} = {marks.batch_of(k)}" for k in batch_kinds]
    mib = 1 << 20
    lines += [
        "",
        "[memory]",
        f"pool_mb = {-(-cfg.watermarks.pool_bytes // mib)}",
        f"batch_mb = {-(-cfg.watermarks.batch_bytes // mib)}",
    ]
    if cfg.budgets or cfg.budget_ledger is not None:
        lines += ["", "[budget]"]
        if cfg.budget_ledger is not None:
            lines.append(f"ledger = {_toml_str(_rel(cfg.budget_ledger, base))}")
        for name, b in sorted(cfg.budgets.items()):
            lines += [
                "",
                f"[budget.datasets.{_toml_key(name)}]",
                f"epsilon = {_toml_value(float(b.epsilon))}",
                f"delta = {_toml_value(float(b.delta))}",
            ]
    return "\n".join(lines) + "\n"


def write_config(cfg: PartyConfig, path: Path) -> Path:
    """Write ``cfg`` as TOML at ``path`` (0644, atomically); ``load_config`` reads back an equal config."""
    path = Path(path)
    write_atomic(path, render_config(cfg, path).encode("utf-8"), 0o644)
    return path
