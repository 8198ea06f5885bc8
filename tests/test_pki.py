"""The cluster PKI: certificates chain to the CA, name their party, keys stay private, TLS 1.3 works.

The handshake tests run real TLS 1.3 (Python's ``ssl``) through ``trio.SSLStream`` over in-memory
streams, with contexts built from the files ``make_cluster`` wrote; every refusal is checked on the
side that must refuse, with the verification error as its cause, and the other side must get no data.
"""

from __future__ import annotations

import os
import re
import ssl
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import trio
import trio.testing
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from actors import cli
from actors.config import load_config
from actors.pki import (
    TlsFiles,
    check_peer,
    client_context,
    create_ca,
    issue_party,
    issue_party_cert,
    load_cert,
    load_key,
    make_cluster,
    party_id_from_cert,
    peer_party_id,
    server_context,
    write_cert,
    write_private_key,
)
from protocols.errors import ConfigError, PeerAuthError

HOSTS = ["127.0.0.1", "::1", "bob.example"]


@pytest.fixture
def cluster(tmp_path: Path) -> Path:
    root = tmp_path / "cluster"
    make_cluster(root, 3, hosts=HOSTS)
    return root


@pytest.fixture
def other_cluster(tmp_path: Path) -> Path:
    root = tmp_path / "other"
    make_cluster(root, 3)
    return root


def files(root: Path, party: int) -> TlsFiles:
    d = root / f"party{party}"
    return TlsFiles(ca=d / "ca.pem", cert=d / "cert.pem", key=d / "key.pem")


def verify_signed_by(cert: x509.Certificate, ca: x509.Certificate) -> None:
    """Raise InvalidSignature unless ``ca``'s public key signed ``cert`` (done by hand, not by a helper)."""
    pub = ca.public_key()
    assert isinstance(pub, ec.EllipticCurvePublicKey)
    assert cert.signature_hash_algorithm is not None
    pub.verify(cert.signature, cert.tbs_certificate_bytes, ec.ECDSA(cert.signature_hash_algorithm))


# ---------------------------------------------------------------------------------------- issuing
def test_make_cluster_writes_the_documented_layout(cluster: Path) -> None:
    expected = {"ca.pem", "ca-key.pem", "README.txt"}
    for i in range(3):
        expected |= {f"party{i}/{f}" for f in ("ca.pem", "cert.pem", "key.pem", "party.toml")}
    found = {str(p.relative_to(cluster)) for p in cluster.rglob("*") if p.is_file()}
    assert found == expected  # and no temporary files left behind
    assert "OFFLINE" in (cluster / "README.txt").read_text()


def test_make_cluster_returns_every_file_it_wrote(tmp_path: Path) -> None:
    written = make_cluster(tmp_path / "c", 2)
    assert sorted(written) == sorted(p for p in (tmp_path / "c").rglob("*") if p.is_file())


def test_party_certificates_chain_to_the_ca(cluster: Path, other_cluster: Path) -> None:
    ca = load_cert(cluster / "ca.pem")
    verify_signed_by(ca, ca)  # self-signed
    for i in range(3):
        cert = load_cert(cluster / f"party{i}" / "cert.pem")
        assert cert.issuer == ca.subject
        verify_signed_by(cert, ca)
        assert load_cert(cluster / f"party{i}" / "ca.pem") == ca
        with pytest.raises(InvalidSignature):
            verify_signed_by(cert, load_cert(other_cluster / "ca.pem"))


def test_ca_is_a_path_length_zero_signing_ca(cluster: Path) -> None:
    ca = load_cert(cluster / "ca.pem")
    bc = ca.extensions.get_extension_for_class(x509.BasicConstraints)
    assert bc.critical and bc.value.ca and bc.value.path_length == 0
    ku = ca.extensions.get_extension_for_class(x509.KeyUsage)
    assert ku.critical and ku.value.key_cert_sign and ku.value.crl_sign and not ku.value.digital_signature
    life = ca.not_valid_after_utc - ca.not_valid_before_utc
    assert timedelta(days=3640) < life < timedelta(days=3660)
    pub = ca.public_key()
    assert isinstance(pub, ec.EllipticCurvePublicKey) and isinstance(pub.curve, ec.SECP256R1)
    assert isinstance(load_key(cluster / "ca-key.pem"), ec.EllipticCurvePrivateKey)


def test_party_certificate_contents(cluster: Path) -> None:
    for i, host in enumerate(HOSTS):
        cert = load_cert(cluster / f"party{i}" / "cert.pem")
        assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == f"spdz party {i}"
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        assert san.get_values_for_type(x509.UniformResourceIdentifier) == [f"spdz://party/{i}"]
        dns = san.get_values_for_type(x509.DNSName)
        ips = [str(a) for a in san.get_values_for_type(x509.IPAddress)]
        if host == "bob.example":
            assert dns == [f"party{i}.spdz", host] and ips == []
        else:
            assert dns == [f"party{i}.spdz"] and ips == [host]
        eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
        assert set(eku) == {ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH}
        ku = cert.extensions.get_extension_for_class(x509.KeyUsage)
        assert ku.critical and ku.value.digital_signature and not ku.value.key_cert_sign
        assert not cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
        life = cert.not_valid_after_utc - cert.not_valid_before_utc
        assert timedelta(days=825) <= life < timedelta(days=826)
        key = load_key(cluster / f"party{i}" / "key.pem")
        assert isinstance(key.curve, ec.SECP256R1) and key.public_key() == cert.public_key()


def test_days_sets_the_party_validity(tmp_path: Path) -> None:
    make_cluster(tmp_path / "c", 2, days=10)
    cert = load_cert(tmp_path / "c" / "party1" / "cert.pem")
    assert timedelta(days=10) <= cert.not_valid_after_utc - cert.not_valid_before_utc < timedelta(days=11)


# ---------------------------------------------------------------------------------------- identity
@pytest.mark.parametrize("party", [0, 1, 2, 7, 123_456])
def test_party_id_round_trips_through_the_san(party: int) -> None:
    ca_cert, ca_key = create_ca()
    cert, _ = issue_party_cert(party, ca_cert=ca_cert, ca_key=ca_key, host="10.1.2.3")
    assert party_id_from_cert(cert) == party
    from cryptography.hazmat.primitives.serialization import Encoding

    assert party_id_from_cert(cert.public_bytes(Encoding.DER)) == party


def _cert_with(names: list[x509.GeneralName] | None) -> x509.Certificate:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "spdz party 1")])
    now = datetime.now(UTC)
    b = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + timedelta(days=1))
    )
    if names is not None:
        b = b.add_extension(x509.SubjectAlternativeName(names), critical=False)
    return b.sign(key, hashes.SHA256())


@pytest.mark.parametrize(
    ("names", "reason"),
    [
        (None, "no SubjectAlternativeName"),
        ([x509.DNSName("party1.spdz")], "no spdz://party/<id> URI"),
        ([x509.UniformResourceIdentifier("https://party/1")], "no spdz://party/<id> URI"),
        ([x509.UniformResourceIdentifier("spdz://party/one")], "malformed party URI"),
        ([x509.UniformResourceIdentifier("spdz://party/01")], "malformed party URI"),
        ([x509.UniformResourceIdentifier("spdz://party/-1")], "malformed party URI"),
        ([x509.UniformResourceIdentifier("spdz://party/1/x")], "malformed party URI"),
        ([x509.UniformResourceIdentifier("spdz://host/1")], "malformed party URI"),
        (
            [
                x509.UniformResourceIdentifier("spdz://party/1"),
                x509.UniformResourceIdentifier("spdz://party/2"),
            ],
            "several parties",
        ),
        (
            [
                x509.UniformResourceIdentifier("spdz://party/1"),
                x509.UniformResourceIdentifier("SPDZ://party/1"),
            ],
            "several parties",
        ),
    ],
)
def test_party_id_refuses_certificates_that_do_not_name_exactly_one_party(
    names: list[x509.GeneralName] | None, reason: str
) -> None:
    with pytest.raises(PeerAuthError, match=re.escape(reason)):
        party_id_from_cert(_cert_with(names))


def test_party_id_refuses_garbage_der() -> None:
    with pytest.raises(PeerAuthError, match="not a DER X.509 certificate"):
        party_id_from_cert(b"\x30\x03\x02\x01\x00")


def test_self_signed_party_certificate_is_its_own_issuer() -> None:
    cert, _ = issue_party_cert(4)
    assert cert.issuer == cert.subject
    verify_signed_by(cert, cert)
    assert party_id_from_cert(cert) == 4


def test_issue_party_cert_needs_both_ca_parts() -> None:
    ca_cert, _ = create_ca()
    with pytest.raises(ValueError, match="both ca_cert and ca_key"):
        issue_party_cert(1, ca_cert=ca_cert)


# ---------------------------------------------------------------------------------------- files
@pytest.mark.parametrize("umask", [0o000, 0o022, 0o077])
def test_keys_are_0600_and_certificates_0644_whatever_the_umask(tmp_path: Path, umask: int) -> None:
    old = os.umask(umask)
    try:
        make_cluster(tmp_path / "c", 2)
    finally:
        os.umask(old)
    for p in (tmp_path / "c").rglob("*.pem"):
        mode = p.stat().st_mode & 0o777
        assert mode == (0o600 if p.name.endswith("key.pem") else 0o644), f"{p}: {mode:o}"


def test_private_keys_are_unencrypted_pkcs8_pem(cluster: Path) -> None:
    for p in [cluster / "ca-key.pem", *cluster.glob("party*/key.pem")]:
        text = p.read_text()
        assert text.startswith("-----BEGIN PRIVATE KEY-----"), p  # PKCS#8, not "EC PRIVATE KEY"
        assert "ENCRYPTED" not in text


def test_refuses_to_overwrite_existing_keys_unless_forced(tmp_path: Path) -> None:
    root = tmp_path / "c"
    make_cluster(root, 2)
    before = (root / "party0" / "key.pem").read_bytes()
    with pytest.raises(ConfigError, match=r"holds keys .*ca\.pem.*refusing to overwrite.*--force"):
        make_cluster(root, 2)
    assert (root / "party0" / "key.pem").read_bytes() == before
    make_cluster(root, 2, force=True)
    assert (root / "party0" / "key.pem").read_bytes() != before
    assert load_config(root / "party0" / "party.toml").party == 0  # a consistent new cluster


def test_refuses_even_when_only_one_party_key_exists(tmp_path: Path) -> None:
    write_private_key(tmp_path / "c" / "party1" / "key.pem", ec.generate_private_key(ec.SECP256R1()))
    with pytest.raises(ConfigError, match=r"party1/key\.pem"):
        make_cluster(tmp_path / "c", 2)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"parties": 1}, "at least 2 parties"),
        ({"parties": 3, "hosts": ["a", "b"]}, "2 hosts given for 3 parties"),
        ({"parties": 2, "hosts": ["a b", "c"]}, "not a host name"),
        ({"parties": 2, "hosts": ["h1,h2", "c"]}, "not a host name"),
        ({"parties": 2, "base_port": 65535}, "not all in 1..65535"),
        ({"parties": 2, "base_port": 0}, "not all in 1..65535"),
        ({"parties": 2, "days": 0}, "at least 1 day"),
    ],
)
def test_make_cluster_rejects_bad_arguments(tmp_path: Path, kwargs: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        make_cluster(tmp_path / "c", **kwargs)
    assert not (tmp_path / "c" / "ca-key.pem").exists()


def test_load_key_refuses_a_group_readable_key(cluster: Path) -> None:
    key = cluster / "party0" / "key.pem"
    key.chmod(0o640)
    with pytest.raises(ConfigError, match="chmod 600"):
        load_key(key)


def test_load_cert_and_key_name_missing_or_malformed_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="nope.pem does not exist"):
        load_cert(tmp_path / "nope.pem")
    (tmp_path / "junk.pem").write_text("junk")
    with pytest.raises(ConfigError, match="junk.pem is not a PEM certificate"):
        load_cert(tmp_path / "junk.pem")
    (tmp_path / "junk.pem").chmod(0o600)
    with pytest.raises(ConfigError, match="junk.pem is not an unencrypted PEM private key"):
        load_key(tmp_path / "junk.pem")


def test_issue_party_from_an_existing_ca(cluster: Path, tmp_path: Path) -> None:
    cert_path, key_path = issue_party(cluster, 5, tmp_path / "extra", host="carol.example")
    cert = load_cert(cert_path)
    verify_signed_by(cert, load_cert(cluster / "ca.pem"))
    assert party_id_from_cert(cert) == 5
    assert key_path.stat().st_mode & 0o777 == 0o600
    with pytest.raises(ConfigError, match="refusing to overwrite"):
        issue_party(cluster, 5, tmp_path / "extra")
    issue_party(cluster, 5, tmp_path / "extra", force=True)
    assert load_cert(cert_path) != cert


# ---------------------------------------------------------------------------------------- CLI
def test_keygen_cli_end_to_end(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "keys"
    rc = cli.main(
        ["keygen", "--parties", "3", "--out", str(out), "--hosts", "10.0.0.1, 10.0.0.2,carol.example"]
    )
    assert rc == 0
    printed = capsys.readouterr()
    for rel in ("ca.pem", "ca-key.pem", "party2/key.pem", "party2/party.toml"):
        assert str(out / rel) in printed.out
    assert "offline" in printed.out
    for key in [out / "ca-key.pem", *out.glob("party*/key.pem")]:  # never print key material
        body = "".join(key.read_text().splitlines()[1:-1])
        assert body[:40] not in printed.out + printed.err
    assert "PRIVATE KEY-----" not in printed.out + printed.err
    cfgs = [load_config(out / f"party{i}" / "party.toml") for i in range(3)]
    assert [c.party for c in cfgs] == [0, 1, 2]
    assert cfgs[0].peers[2].host == "carol.example" and cfgs[0].peers[1].port == 7701
    assert cfgs[2].listen.host == "0.0.0.0" and cfgs[2].listen.port == 7702  # noqa: S104
    ca = load_cert(out / "ca.pem")
    for c in cfgs:
        verify_signed_by(load_cert(c.tls.cert), ca)

    rc = cli.main(["keygen", "--parties", "3", "--out", str(out)])
    assert rc == 2
    assert "--force" in capsys.readouterr().err
    rc = cli.main(
        ["keygen", "--parties", "2", "--out", str(out), "--force", "--base-port", "9000", "--days", "30"]
    )
    assert rc == 0
    cfg = load_config(out / "party1" / "party.toml")
    assert (
        cfg.n == 2
        and cfg.listen.port == 9001
        and cfg.peers == {0: cfg.peers[0]}
        and cfg.peers[0].port == 9000
    )
    cert = load_cert(cfg.tls.cert)
    assert cert.not_valid_after_utc - cert.not_valid_before_utc < timedelta(days=31)


def test_keygen_cli_reports_bad_hosts_without_a_traceback(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rc = cli.main(["keygen", "--parties", "3", "--out", str(tmp_path / "k"), "--hosts", "a,b"])
    assert rc == 2
    assert "2 hosts given for 3 parties" in capsys.readouterr().err
    assert not (tmp_path / "k").exists()


# ---------------------------------------------------------------------------------------- TLS
def test_contexts_are_tls13_only_with_mutual_verification(cluster: Path) -> None:
    for ctx in (server_context(files(cluster, 0)), client_context(files(cluster, 1))):
        assert ctx.minimum_version == ssl.TLSVersion.TLSv1_3
        assert ctx.maximum_version == ssl.TLSVersion.TLSv1_3
        assert ctx.verify_mode == ssl.CERT_REQUIRED
        assert ctx.check_hostname is False


def test_contexts_accept_a_party_config(cluster: Path) -> None:
    cfg = load_config(cluster / "party0" / "party.toml")
    assert server_context(cfg).verify_mode == ssl.CERT_REQUIRED
    assert client_context(cfg).verify_mode == ssl.CERT_REQUIRED


def test_context_refuses_a_world_readable_key(cluster: Path) -> None:
    (cluster / "party0" / "key.pem").chmod(0o644)
    with pytest.raises(ConfigError, match="chmod 600"):
        server_context(files(cluster, 0))


class Outcome:
    def __init__(self, server: trio.SSLStream, client: trio.SSLStream) -> None:
        self.server = server
        self.client = client
        self.errors: dict[str, BaseException] = {}
        self.received: dict[str, bytes] = {}


async def exchange(server_ctx: ssl.SSLContext, client_ctx: ssl.SSLContext) -> Outcome:
    """Handshake, then client sends ``ping`` and server answers ``pong``; record what each side saw.

    A side that fails closes its transport, so that the other side sees the failure instead of
    waiting forever (TLS 1.3 clients finish their handshake before the server has judged their
    certificate, and learn of a refusal only when they read).
    """
    a, b = trio.testing.memory_stream_pair()
    out = Outcome(
        trio.SSLStream(a, server_ctx, server_side=True), trio.SSLStream(b, client_ctx, server_hostname=None)
    )

    async def side(name: str, stream: trio.SSLStream, say: bytes) -> None:
        try:
            await stream.do_handshake()
            if name == "client":
                await stream.send_all(say)
                out.received[name] = await stream.receive_some(100)
            else:
                out.received[name] = await stream.receive_some(100)
                await stream.send_all(say)
        except trio.BrokenResourceError as e:
            out.errors[name] = e
            await stream.transport_stream.aclose()

    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(side, "server", out.server, b"pong")
            nursery.start_soon(side, "client", out.client, b"ping")
    return out


def assert_refused_by(out: Outcome, side: str) -> None:
    err = out.errors.get(side)
    assert err is not None, f"the {side} accepted the handshake: {out.received}"
    assert isinstance(err.__cause__, ssl.SSLCertVerificationError), repr(err.__cause__)
    assert out.received.get("client") in (None, b""), "the client received data over a refused connection"
    assert "server" not in out.received or out.received["server"] == b""


async def test_tls13_handshake_between_two_parties(cluster: Path) -> None:
    out = await exchange(server_context(files(cluster, 0)), client_context(files(cluster, 1)))
    assert out.errors == {}
    assert out.received == {"server": b"ping", "client": b"pong"}
    assert out.server.version() == "TLSv1.3" and out.client.version() == "TLSv1.3"
    assert peer_party_id(out.server) == 1 and peer_party_id(out.client) == 0
    assert check_peer(out.server, 1) == 1 and check_peer(out.client, 0) == 0


async def test_party_presenting_another_partys_certificate_is_refused_by_check_peer(cluster: Path) -> None:
    # party 1's files, but the server believes it is talking to party 2: the CA vouches for the
    # certificate, only the id check catches the impostor
    out = await exchange(server_context(files(cluster, 0)), client_context(files(cluster, 1)))
    assert out.errors == {}
    with pytest.raises(PeerAuthError, match="certificate for party 1, but this link is to party 2"):
        check_peer(out.server, 2)
    with pytest.raises(PeerAuthError, match="certificate for party 0, but this link is to party 2"):
        check_peer(out.client, 2)


async def test_client_certificate_from_another_ca_is_refused(cluster: Path, other_cluster: Path) -> None:
    foreign = TlsFiles(
        ca=cluster / "ca.pem", cert=other_cluster / "party1/cert.pem", key=other_cluster / "party1/key.pem"
    )
    out = await exchange(server_context(files(cluster, 0)), client_context(foreign))
    assert_refused_by(out, "server")


async def test_server_certificate_from_another_ca_is_refused(cluster: Path, other_cluster: Path) -> None:
    foreign = TlsFiles(
        ca=cluster / "ca.pem", cert=other_cluster / "party0/cert.pem", key=other_cluster / "party0/key.pem"
    )
    out = await exchange(server_context(foreign), client_context(files(cluster, 1)))
    assert_refused_by(out, "client")


async def test_expired_certificate_is_refused(cluster: Path, tmp_path: Path) -> None:
    past = datetime.now(UTC) - timedelta(days=30)
    cert, key = issue_party(
        cluster, 1, tmp_path / "old", not_valid_before=past, not_valid_after=past + timedelta(days=1)
    )
    out = await exchange(
        server_context(files(cluster, 0)), client_context(TlsFiles(ca=cluster / "ca.pem", cert=cert, key=key))
    )
    assert_refused_by(out, "server")
    assert "expired" in str(out.errors["server"].__cause__)


async def test_self_signed_certificate_is_refused(cluster: Path, tmp_path: Path) -> None:
    cert, key = issue_party_cert(1)
    tls = TlsFiles(
        ca=cluster / "ca.pem",
        cert=write_cert(tmp_path / "self" / "cert.pem", cert),
        key=write_private_key(tmp_path / "self" / "key.pem", key),
    )
    out = await exchange(server_context(files(cluster, 0)), client_context(tls))
    assert_refused_by(out, "server")


async def test_client_without_a_certificate_is_refused(cluster: Path) -> None:
    bare = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    bare.check_hostname = False
    bare.load_verify_locations(cafile=str(cluster / "ca.pem"))
    out = await exchange(server_context(files(cluster, 0)), bare)
    assert "server" in out.errors
    assert out.received.get("client") in (None, b"")


async def test_tls12_client_is_refused(cluster: Path) -> None:
    old = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    old.check_hostname = False
    old.maximum_version = ssl.TLSVersion.TLSv1_2
    old.load_verify_locations(cafile=str(cluster / "ca.pem"))
    old.load_cert_chain(str(cluster / "party1" / "cert.pem"), str(cluster / "party1" / "key.pem"))
    out = await exchange(server_context(files(cluster, 0)), old)
    assert "server" in out.errors and "client" in out.errors
    assert isinstance(out.errors["server"].__cause__, ssl.SSLError)
    assert "unsupported protocol" in str(out.errors["server"].__cause__).lower()
