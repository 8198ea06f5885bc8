"""Party configuration: TOML round trips, defaults, and a ConfigError naming file and key for every mistake.

The bad-config cases start from a file ``make_cluster`` wrote and change one thing, so each case is
known to be the only problem; every edit asserts that the text it replaces is there, so a change of
layout breaks these tests loudly instead of making them vacuous.
"""

from __future__ import annotations

import dataclasses
import shutil
import tomllib
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

import actors.config
from actors.config import Address, Backoff, PartyConfig, load_config, render_config, write_config
from actors.offline import Watermarks
from actors.pki import issue_party, make_cluster
from protocols.errors import ConfigError
from protocols.online import DEFAULT_KING_MIN


@pytest.fixture
def cluster(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.delenv("RUNTIME_DIRECTORY", raising=False)
    monkeypatch.delenv("STATE_DIRECTORY", raising=False)
    root = tmp_path / "cluster"
    make_cluster(root, 3)
    return root


@pytest.fixture
def cfg_path(cluster: Path) -> Path:
    return cluster / "party1" / "party.toml"


def edit(path: Path, *subs: tuple[str, str]) -> Path:
    text = path.read_text()
    for old, new in subs:
        assert old in text, f"test out of date: {old!r} is not in the written config"
        text = text.replace(old, new, 1)
    path.write_text(text)
    return path


def expect_error(path: Path, key: str, phrase: str) -> str:
    with pytest.raises(ConfigError) as info:
        load_config(path)
    msg = str(info.value)
    assert str(path) in msg, msg
    assert f"'{key}'" in msg, msg
    assert phrase in msg, msg
    return msg


def dotted_keys(doc: dict[str, Any], prefix: str = "") -> set[str]:
    out: set[str] = set()
    for k, v in doc.items():
        out |= dotted_keys(v, f"{prefix}{k}.") if isinstance(v, dict) else {prefix + k}
    return out


# ---------------------------------------------------------------------------------------- good files
def test_keygen_configs_load_with_the_expected_values(cluster: Path) -> None:
    for i in range(3):
        d = cluster / f"party{i}"
        cfg = load_config(d / "party.toml")
        assert (cfg.party, cfg.n) == (i, 3)
        assert cfg.listen == Address("127.0.0.1", 7700 + i)
        assert cfg.peers == {j: Address("127.0.0.1", 7700 + j) for j in range(3) if j != i}
        assert (cfg.tls.ca, cfg.tls.cert, cfg.tls.key) == (d / "ca.pem", d / "cert.pem", d / "key.pem")
        assert cfg.field == "p127" and cfg.preprocessing == "mascot" and not cfg.insecure_dealer
        assert cfg.watermarks == Watermarks()
        assert (cfg.log_level, cfg.log_format, cfg.peer_timeout) == ("info", "console", 30.0)
        assert cfg.reconnect == Backoff(0.5, 30.0) and cfg.metrics_port is None
        assert cfg.king_min == DEFAULT_KING_MIN
        assert cfg.control_socket == d / f"spdz-party{i}.sock" and cfg.state_dir == d / "state"
        assert cfg.source == d / "party.toml"


def test_the_docstring_layout_is_what_write_config_writes(cluster: Path) -> None:
    cfg_path = cluster / "party0" / "party.toml"  # the docstring shows party 0 of 3
    doc = actors.config.__doc__ or ""
    block = doc.split("Layout", 1)[1].split("::\n", 1)[1]
    documented = tomllib.loads("\n".join(line[4:] for line in block.splitlines()))
    written = tomllib.loads(cfg_path.read_text())
    assert dotted_keys(documented) == dotted_keys(written)
    commented = {"control_socket", "state_dir"}
    for name in commented:
        assert f"# {name}" in doc and f"# {name}" in cfg_path.read_text()


def test_round_trip_of_a_keygen_config(cfg_path: Path, tmp_path: Path) -> None:
    cfg = load_config(cfg_path)
    out = write_config(cfg, tmp_path / "elsewhere" / "copy.toml")
    again = load_config(out)
    assert again == cfg
    assert again.source == out
    assert str(cfg_path.parent) in out.read_text()  # outside its directory: absolute paths


def test_round_trip_with_every_option_changed_and_awkward_paths(cluster: Path, tmp_path: Path) -> None:
    weird = tmp_path / 'we"ird\\ dir é\t'
    shutil.copytree(cluster / "party1", weird)
    (weird / "key.pem").chmod(0o600)
    base = load_config(weird / "party.toml")
    marks = Watermarks(
        triple=(1, 2),
        mask=(3, 4),
        square=(5, 6),
        bit=(0, 7),
        random=(8, 9),
        batch=dict.fromkeys(base.watermarks.batch, 11),
        pool_bytes=3 << 20,
        batch_bytes=900 << 20,
    )
    cfg = dataclasses.replace(
        base,
        field="p61",
        preprocessing="dealer",
        insecure_dealer=True,
        ot_extension="kos",
        watermarks=marks,
        log_level="debug",
        log_format="json",
        peer_timeout=2.5,
        idle_timeout=12.5,
        reconnect=Backoff(0.125, 4.0),
        metrics_port=9100,
        king_min=0,
        control_socket=weird / 'ctl "sock"\n.sock',
        state_dir=tmp_path / "state dir",
        listen=Address("::1", 9001),
        peers={0: Address("alice.example", 9000), 2: Address("10.0.0.3", 9002)},
    )
    path = write_config(cfg, weird / "party.toml")
    again = load_config(path)
    assert again == cfg
    text = path.read_text()
    assert 'ca = "ca.pem"' in text  # inside its directory: relative, so the directory can move
    assert 'control_socket = "ctl \\"sock\\"\\n.sock"' in text


def test_render_is_stable(cfg_path: Path) -> None:
    cfg = load_config(cfg_path)
    assert render_config(cfg, cfg_path) == cfg_path.read_text()


def test_minimal_file_gets_the_defaults(cluster: Path) -> None:
    path = cluster / "party0" / "min.toml"
    path.write_text(
        "party = 0\nparties = 2\n"
        '[listen]\nhost = "127.0.0.1"\nport = 7000\n'
        '[tls]\nca = "ca.pem"\ncert = "cert.pem"\nkey = "key.pem"\n'
        '[peers.1]\nhost = "127.0.0.1"\nport = 7001\n'
    )
    cfg = load_config(path)
    assert cfg.field == "p127" and cfg.preprocessing == "mascot" and cfg.watermarks == Watermarks()
    assert cfg.ot_extension == "softspoken"
    assert cfg.peer_timeout == 30.0 and cfg.reconnect == Backoff() and cfg.metrics_port is None
    assert (cfg.log_level, cfg.log_format) == ("info", "console")


def test_partial_pool_tables_keep_the_other_defaults(cfg_path: Path) -> None:
    text = cfg_path.read_text()
    cut = text.index("[pool]")
    cfg_path.write_text(text[:cut] + "[pool]\ntriple = [10, 20]\n[pool.batch]\nmask = 7\n")
    marks = load_config(cfg_path).watermarks
    assert marks.triple == (10, 20) and marks.mask == Watermarks().mask
    assert marks.batch_of("mask") == 7 and marks.batch_of("triple") == Watermarks().batch_of("triple")


def test_relative_paths_are_resolved_against_the_config_directory(
    cfg_path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    elsewhere = tmp_path / "cwd"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    edit(cfg_path, ("metrics_port = 0  # 0 = off", 'metrics_port = 0\nstate_dir = "../var"'))
    cfg = load_config(cfg_path)
    assert cfg.tls.cert == cfg_path.parent / "cert.pem"
    assert cfg.state_dir == cfg_path.parent / "../var"


def test_systemd_directories_set_the_defaults(
    cfg_path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RUNTIME_DIRECTORY", f"{tmp_path}/run:{tmp_path}/run2")
    monkeypatch.setenv("STATE_DIRECTORY", f"{tmp_path}/lib")
    cfg = load_config(cfg_path)
    assert cfg.control_socket == tmp_path / "run" / "spdz-party1.sock"
    assert cfg.state_dir == tmp_path / "lib"


def test_explicit_control_socket_wins_over_runtime_directory(
    cfg_path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RUNTIME_DIRECTORY", str(tmp_path / "run"))
    edit(cfg_path, ("metrics_port = 0  # 0 = off", 'metrics_port = 0\ncontrol_socket = "/run/x.sock"'))
    assert load_config(cfg_path).control_socket == Path("/run/x.sock")


def test_dealer_is_accepted_with_insecure_dealer(cfg_path: Path) -> None:
    edit(
        cfg_path,
        ('preprocessing = "mascot"', 'preprocessing = "dealer"'),
        ("insecure_dealer = false", "insecure_dealer = true"),
    )
    cfg = load_config(cfg_path)
    assert cfg.preprocessing == "dealer" and cfg.insecure_dealer


def test_integer_seconds_and_metrics_port(cfg_path: Path) -> None:
    edit(
        cfg_path,
        ("peer_timeout = 30.0", "peer_timeout = 5"),
        ("idle_timeout = 30.0", "idle_timeout = 8"),
        ("metrics_port = 0", "metrics_port = 9100"),
    )
    cfg = load_config(cfg_path)
    assert cfg.peer_timeout == 5.0 and isinstance(cfg.peer_timeout, float) and cfg.metrics_port == 9100
    assert cfg.idle_timeout == 8.0


def test_check_files_false_skips_the_tls_files(cfg_path: Path) -> None:
    (cfg_path.parent / "cert.pem").unlink()
    assert load_config(cfg_path, check_files=False).party == 1
    with pytest.raises(ConfigError):
        load_config(cfg_path)


def test_for_cluster_matches_what_keygen_wrote(cluster: Path) -> None:
    d = cluster / "party2"
    cfg = PartyConfig.for_cluster(
        party=2,
        n=3,
        hosts=["127.0.0.1"] * 3,
        ports=[7700, 7701, 7702],
        listen_host="127.0.0.1",
        tls=load_config(d / "party.toml").tls,
        config_dir=d,
    )
    assert cfg == load_config(d / "party.toml")


# ---------------------------------------------------------------------------------------- bad files
PEER2 = '[peers.2]\nhost = "127.0.0.1"\nport = 7702\n'
TOP = "metrics_port = 0  # 0 = off"
TLS = "[tls]  # relative paths are resolved against this file's directory\n"
TLS += 'ca = "ca.pem"\ncert = "cert.pem"\nkey = "key.pem"\n'

KING = "king_min = 65536  # openings from this size go through kings; 0 = never"

BAD: list[tuple[str, list[tuple[str, str]], str, str]] = [
    ("missing party", [("party = 1\n", "")], "party", "missing (expected an integer"),
    ("parties as string", [("parties = 3", 'parties = "3"')], "parties", "got a string ('3')"),
    ("parties too small", [("parties = 3", "parties = 1")], "parties", "an integer in 2.."),
    ("party out of range", [("party = 1", "party = 3")], "party", "out of range: ids are 0..2"),
    ("negative party", [("party = 1", "party = -1")], "party", "an integer in 0.."),
    ("boolean party", [("party = 1", "party = true")], "party", "got a boolean"),
    ("unknown field", [('field = "p127"', 'field = "p256"')], "field", 'expected "p127" or "p61"'),
    (
        "dealer not allowed",
        [('preprocessing = "mascot"', 'preprocessing = "dealer"')],
        "preprocessing",
        "insecure_dealer = true",
    ),
    (
        "unknown preprocessing",
        [('preprocessing = "mascot"', 'preprocessing = "magic"')],
        "preprocessing",
        '"mascot" or "dealer"',
    ),
    (
        "unknown OT extension",
        [('ot_extension = "softspoken"', 'ot_extension = "iknp"')],
        "ot_extension",
        '"kos" or "softspoken"',
    ),
    (
        "insecure_dealer as string",
        [("insecure_dealer = false", 'insecure_dealer = "yes"')],
        "insecure_dealer",
        "true or false",
    ),
    ("zero timeout", [("peer_timeout = 30.0", "peer_timeout = 0")], "peer_timeout", "positive number"),
    ("infinite timeout", [("peer_timeout = 30.0", "peer_timeout = inf")], "peer_timeout", "positive number"),
    ("string timeout", [("peer_timeout = 30.0", 'peer_timeout = "30"')], "peer_timeout", "positive number"),
    ("idle below heartbeat", [("idle_timeout = 30.0", "idle_timeout = 3")], "idle_timeout", "heartbeat"),
    ("zero idle timeout", [("idle_timeout = 30.0", "idle_timeout = 0")], "idle_timeout", "positive number"),
    ("metrics port range", [(TOP, "metrics_port = 70000")], "metrics_port", "0..65535"),
    ("metrics on listen port", [(TOP, "metrics_port = 7701")], "metrics_port", "listen.port"),
    (
        "unknown top-level keys",
        [(TOP, TOP + "\ncolour = 1\nsize = 2")],
        "colour",
        "unknown keys 'colour', 'size'",
    ),
    ("missing listen", [('[listen]\nhost = "127.0.0.1"\nport = 7701\n', "")], "listen", "missing table"),
    ("listen port range", [("port = 7701", "port = 70000")], "listen.port", "1..65535"),
    (
        "listen host with space",
        [('[listen]\nhost = "127.0.0.1"', '[listen]\nhost = "my host"')],
        "listen.host",
        "not a host",
    ),
    ("unknown listen key", [("port = 7701", "port = 7701\nbacklog = 5")], "listen.backlog", "unknown key"),
    ("missing peer", [(PEER2, "")], "peers", "missing peer 2"),
    ("peer out of range", [("[peers.2]", "[peers.5]")], "peers.5", "out of range"),
    ("peer is self", [("[peers.2]", "[peers.1]")], "peers.1", "own id"),
    ("peer id not a number", [("[peers.2]", "[peers.two]")], "peers.two", "named by party id"),
    ("peer id with leading zero", [("[peers.2]", "[peers.02]")], "peers.02", "named by party id"),
    ("peer missing port", [(PEER2, '[peers.2]\nhost = "127.0.0.1"\n')], "peers.2.port", "missing"),
    ("peer port as string", [("port = 7702", 'port = "7702"')], "peers.2.port", "an integer in 1..65535"),
    ("unknown peer key", [("port = 7702", "port = 7702\nname = 'carol'")], "peers.2.name", "unknown key"),
    (
        "duplicate peer ports",
        [("port = 7702", "port = 7700")],
        "peers.2.port",
        "peers.2 and peers.0 both use 127.0.0.1:7700",
    ),
    ("peer on listen port", [("port = 7702", "port = 7701")], "peers.2.port", "and listen both use"),
    ("missing tls", [(TLS, "")], "tls", "missing table"),
    ("missing tls.key", [('key = "key.pem"\n', "")], "tls.key", "missing (expected a non-empty path"),
    ("tls.ca not a string", [('ca = "ca.pem"', "ca = 3")], "tls.ca", "a non-empty path string"),
    ("unknown tls key", [('key = "key.pem"', 'key = "key.pem"\nkye = "key.pem"')], "tls.kye", "unknown key"),
    (
        "missing cert file",
        [('cert = "cert.pem"', 'cert = "nope.pem"')],
        "tls.cert",
        "nope.pem does not exist",
    ),
    ("missing key file", [('key = "key.pem"', 'key = "nope.pem"')], "tls.key", "nope.pem does not exist"),
    (
        "another party's cert",
        [('cert = "cert.pem"', 'cert = "../party0/cert.pem"')],
        "tls.cert",
        "certificate of party 0",
    ),
    (
        "key of another cert",
        [('key = "key.pem"', 'key = "../party0/key.pem"')],
        "tls.key",
        "not the private key",
    ),
    ("bad log level", [('level = "info"', 'level = "loud"')], "log.level", '"debug" or "info"'),
    ("bad log format", [('format = "console"', 'format = "xml"')], "log.format", '"console" or "json"'),
    (
        "backoff max below initial",
        [("max = 30.0", "max = 0.1")],
        "reconnect.max",
        "at least reconnect.initial",
    ),
    (
        "low above high",
        [("triple = [20000, 60000]", "triple = [5, 1]")],
        "pool.triple",
        "above high watermark",
    ),
    ("one watermark", [("triple = [20000, 60000]", "triple = [5]")], "pool.triple", "[low, high]"),
    ("negative watermark", [("mask = [2000, 8000]", "mask = [-1, 8000]")], "pool.mask", "non-negative"),
    ("zero batch", [("triple = 8192", "triple = 0")], "pool.batch.triple", "an integer in 1.."),
    ("unknown pool kind", [("[pool]\n", "[pool]\ncake = [1, 2]\n")], "pool.cake", "unknown key"),
    (
        "unknown batch kind",
        [("[pool.batch]\n", "[pool.batch]\ncake = 1\n")],
        "pool.batch.cake",
        "unknown key",
    ),
    ("unknown table", [("[log]\n", "[logging]\n")], "logging", "unknown key"),
    ("pool_mb too small", [("pool_mb = 256", "pool_mb = 0")], "memory.pool_mb", "an integer in 1.."),
    ("batch_mb as string", [("batch_mb = 640", 'batch_mb = "384"')], "memory.batch_mb", "an integer"),
    (
        "batch_mb below one batch",
        [("batch_mb = 640", "batch_mb = 8")],
        "memory.batch_mb",
        "a MASCOT batch at 3 parties on p127 needs about",
    ),
    ("unknown memory key", [("[memory]\n", "[memory]\nrss_mb = 900\n")], "memory.rss_mb", "unknown key"),
    ("negative king_min", [(KING, "king_min = -1")], "king_min", "0.."),
    ("king_min as float", [(KING, "king_min = 1e5")], "king_min", "an integer"),
]


@pytest.mark.parametrize(("subs", "key", "phrase"), [c[1:] for c in BAD], ids=[c[0] for c in BAD])
def test_bad_config_names_file_and_key(
    cfg_path: Path, subs: list[tuple[str, str]], key: str, phrase: str
) -> None:
    expect_error(edit(cfg_path, *subs), key, phrase)


def test_group_readable_key_suggests_chmod(cfg_path: Path) -> None:
    key = cfg_path.parent / "key.pem"
    key.chmod(0o640)
    msg = expect_error(cfg_path, "tls.key", "chmod 600")
    assert str(key) in msg
    key.chmod(0o604)
    expect_error(cfg_path, "tls.key", "accessible by group or others")


def test_certificate_from_another_ca_is_named(cfg_path: Path, tmp_path: Path) -> None:
    make_cluster(tmp_path / "other", 2)
    edit(cfg_path, ('ca = "ca.pem"', f'ca = "{tmp_path / "other" / "ca.pem"}"'))
    expect_error(cfg_path, "tls.cert", "is not signed by the CA")


def test_ca_file_that_is_not_a_certificate(cfg_path: Path) -> None:
    (cfg_path.parent / "ca.pem").write_text("not a certificate\n")
    expect_error(cfg_path, "tls.ca", "is not a PEM certificate")


def test_expired_certificate_is_named(cluster: Path, cfg_path: Path) -> None:
    past = datetime.now(UTC) - timedelta(days=30)
    issue_party(
        cluster,
        1,
        cfg_path.parent,
        not_valid_before=past,
        not_valid_after=past + timedelta(days=1),
        force=True,
    )
    expect_error(cfg_path, "tls.cert", "expired on")


def test_not_yet_valid_certificate_is_named(cluster: Path, cfg_path: Path) -> None:
    soon = datetime.now(UTC) + timedelta(days=2)
    issue_party(cluster, 1, cfg_path.parent, not_valid_before=soon, force=True)
    expect_error(cfg_path, "tls.cert", "is not valid before")


def test_invalid_toml_names_the_file(cfg_path: Path) -> None:
    edit(cfg_path, ("party = 1", "party = = 1"))
    with pytest.raises(ConfigError, match="not valid TOML") as info:
        load_config(cfg_path)
    assert str(cfg_path) in str(info.value)


def test_missing_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="config file does not exist") as info:
        load_config(tmp_path / "absent.toml")
    assert str(tmp_path / "absent.toml") in str(info.value)


def test_peers_must_be_a_table(cfg_path: Path) -> None:
    text = cfg_path.read_text()
    start, end = text.index("[peers.0]"), text.index("[log]")
    cfg_path.write_text(text[:start] + text[end:])
    edit(cfg_path, (TOP, TOP + "\npeers = 3"))
    expect_error(cfg_path, "peers", "expected a table")
