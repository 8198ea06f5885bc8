"""The cluster PKI: one CA, one certificate per party, and the TLS 1.3 contexts built from them.

Why a private CA and not the web PKI: the question a party must answer about a peer is not "does this
host own that DNS name" but "is this the holder of party 2's key". So every party certificate carries
its party id as a URI SubjectAlternativeName ``spdz://party/<id>``, signed by a CA that only this
cluster trusts, and the transport checks that id after the handshake on **both** ends (MPyC's server
never checked its clients' ids; ``check_peer`` exists so that nobody forgets). Hostname checking is off
for the same reason: parties may move hosts; their ids may not change.

Layout written by ``make_cluster`` (``spdz keygen``)::

    DIR/ca.pem             the CA certificate (public; every party trusts it)
    DIR/ca-key.pem         the CA private key, mode 0600: only needed to issue certificates, so move
                           it OFFLINE (or delete it) once the party certificates are made
    DIR/README.txt         this list, for whoever receives the directory
    DIR/party<i>/ca.pem    a copy of the CA certificate, so that each party directory is self-contained
    DIR/party<i>/cert.pem  party i's certificate (serverAuth and clientAuth: each party is both)
    DIR/party<i>/key.pem   party i's private key, PKCS#8 PEM, unencrypted, mode 0600
    DIR/party<i>/party.toml  party i's configuration (see ``actors.config``)

Keys are ECDSA P-256 (small, fast handshakes, supported by every TLS 1.3 stack). Private keys are
written through a temporary file that is ``0600`` before it holds a byte and is then renamed into
place, so no reader ever sees a partial or world-readable key. Nothing here logs or prints key
material.
"""

from __future__ import annotations

import ipaddress
import os
import re
import secrets
import ssl
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Protocol

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from protocols.errors import ConfigError, PeerAuthError

CA_DAYS = 3650
PARTY_DAYS = 825
DEFAULT_BASE_PORT = 7700
URI_PREFIX = "spdz://party/"
CLOCK_SKEW = timedelta(minutes=5)  # certificates start a little in the past: peers' clocks differ

_URI_RE = re.compile(r"spdz://party/(0|[1-9][0-9]{0,8})")
_HOST_RE = re.compile(r"[A-Za-z0-9._:%-]{1,253}")

CA_CERT = "ca.pem"
CA_KEY = "ca-key.pem"
CERT = "cert.pem"
KEY = "key.pem"
CONFIG = "party.toml"


@dataclass(frozen=True, slots=True)
class TlsFiles:
    """Where one party's trust anchor, certificate and private key are (absolute paths once loaded)."""

    ca: Path
    cert: Path
    key: Path


class _HasTls(Protocol):
    @property
    def tls(self) -> TlsFiles: ...


class _HasPeerCert(Protocol):
    def getpeercert(self, binary_form: bool = ...) -> Any: ...


# ---------------------------------------------------------------------------------------- issuing
def _now() -> datetime:
    return datetime.now(UTC)


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def check_host(host: str) -> str:
    """``host`` if it is a plausible host name or IP literal; a ConfigError naming it otherwise.

    Certificates and configs carry it verbatim, so reject what would corrupt either (spaces, quotes,
    commas from a mistyped ``--hosts`` list, non-ASCII names that x509 DNS names cannot hold).
    """
    if not isinstance(host, str) or not _HOST_RE.fullmatch(host):
        raise ConfigError(f"{host!r} is not a host name or IP address (ASCII letters, digits, '.', '-', ':')")
    return host


def _host_san(host: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(host))
    except ValueError:
        return x509.DNSName(host)


PrivateKey = ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey


def _key_usage(*, ca: bool) -> x509.KeyUsage:
    """A CA signs certificates (and CRLs) only; a party's key signs its TLS handshakes only."""
    return x509.KeyUsage(
        digital_signature=not ca,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=ca,
        crl_sign=ca,
        encipher_only=False,
        decipher_only=False,
    )


def _digest(key: PrivateKey) -> hashes.HashAlgorithm | None:
    """The signature's hash: Ed25519 signs the message itself."""
    return None if isinstance(key, ed25519.Ed25519PrivateKey) else hashes.SHA256()


def create_ca(
    *,
    days: int = CA_DAYS,
    common_name: str | None = None,
    key: PrivateKey | None = None,
    serial: int | None = None,
) -> tuple[x509.Certificate, PrivateKey]:
    """A fresh self-signed cluster CA (ECDSA P-256, CA:true with path length 0: it signs parties only).

    The default common name carries a random tag, so that certificates of two clusters are told apart
    by their issuer name in error messages (they never verify against each other's CA anyway).
    ``key`` and ``serial`` default to a new P-256 key and a random serial; the simulator passes an
    Ed25519 key and a fixed serial, so that its certificates and signatures always have one size.
    """
    if days < 1:
        raise ConfigError(f"CA validity must be at least 1 day, got {days}")
    key = key if key is not None else ec.generate_private_key(ec.SECP256R1())
    name = _name(common_name or f"spdz cluster CA {secrets.token_hex(4)}")
    now = _now()
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(serial if serial is not None else x509.random_serial_number())
        .not_valid_before(now - CLOCK_SKEW)
        .not_valid_after(now + timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_key_usage(ca=True), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, _digest(key))
    )
    return cert, key


def issue_party_cert(
    party: int,
    *,
    ca_cert: x509.Certificate | None = None,
    ca_key: PrivateKey | None = None,
    host: str | None = None,
    days: int = PARTY_DAYS,
    not_valid_before: datetime | None = None,
    not_valid_after: datetime | None = None,
    key: PrivateKey | None = None,
    serial: int | None = None,
) -> tuple[x509.Certificate, PrivateKey]:
    """A fresh key and certificate for ``party``, signed by the CA (or self-signed without one).

    SANs: ``spdz://party/<id>`` (the identity the transport checks), ``party<id>.spdz`` and ``host``
    (IP address SAN if it parses as one), for tools that want a name. ``not_valid_before/after``
    override the validity window, so tests can make expired or not-yet-valid certificates;
    self-signed certificates exist for the same reason: both must be refused by a handshake. ``key``
    and ``serial``: as for ``create_ca``.
    """
    if not isinstance(party, int) or isinstance(party, bool) or not 0 <= party < 10**9:
        raise ConfigError(f"party id must be an integer in 0..999999999, got {party!r}")
    if (ca_cert is None) != (ca_key is None):
        raise ValueError("give both ca_cert and ca_key, or neither for a self-signed certificate")
    if days < 1:
        raise ConfigError(f"certificate validity must be at least 1 day, got {days}")
    key = key if key is not None else ec.generate_private_key(ec.SECP256R1())
    subject = _name(f"spdz party {party}")
    names: list[x509.GeneralName] = [
        x509.UniformResourceIdentifier(f"{URI_PREFIX}{party}"),
        x509.DNSName(f"party{party}.spdz"),
    ]
    if host is not None and host != f"party{party}.spdz":
        names.append(_host_san(check_host(host)))
    start = not_valid_before if not_valid_before is not None else _now() - CLOCK_SKEW
    end = not_valid_after if not_valid_after is not None else start + CLOCK_SKEW + timedelta(days=days)
    if ca_cert is not None and ca_key is not None:
        issuer, signer, issuer_pub = ca_cert.subject, ca_key, ca_key.public_key()
    else:
        issuer, signer, issuer_pub = subject, key, key.public_key()
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(serial if serial is not None else x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_key_usage(ca=False), critical=True)
        .add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]),
            critical=False,
        )
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_pub), critical=False)
        .sign(signer, _digest(signer))
    )
    return cert, key


# ---------------------------------------------------------------------------------------- identity
def party_id_from_cert(cert: x509.Certificate | bytes | bytearray | memoryview) -> int:
    """The party id a certificate was issued to, from its single ``spdz://party/<id>`` URI SAN.

    Takes a certificate or its DER bytes (what ``getpeercert(binary_form=True)`` returns). Raises
    ``PeerAuthError`` saying why when the certificate names no party, names one malformedly, or names
    several: a certificate that could be read as two parties must be read as none.
    """
    if not isinstance(cert, x509.Certificate):
        try:
            cert = x509.load_der_x509_certificate(bytes(cert))
        except (ValueError, TypeError) as e:
            raise PeerAuthError(f"peer certificate is not a DER X.509 certificate: {e}") from None
    who = cert.subject.rfc4514_string() or "<empty subject>"
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        raise PeerAuthError(
            f"certificate {who!r} has no SubjectAlternativeName, so it names no party "
            f"(expected a URI {URI_PREFIX}<id>)"
        ) from None
    except ValueError as e:  # duplicate or undecodable extensions
        raise PeerAuthError(f"certificate {who!r} has malformed extensions: {e}") from None
    uris = [
        u for u in san.get_values_for_type(x509.UniformResourceIdentifier) if u.lower().startswith("spdz:")
    ]
    if not uris:
        raise PeerAuthError(f"certificate {who!r} has no {URI_PREFIX}<id> URI SAN, so it names no party")
    if len(uris) > 1:
        raise PeerAuthError(
            f"certificate {who!r} names several parties ({', '.join(uris)}); "
            f"a party certificate carries exactly one {URI_PREFIX}<id> URI"
        )
    m = _URI_RE.fullmatch(uris[0])
    if m is None:
        raise PeerAuthError(
            f"certificate {who!r} has a malformed party URI {uris[0]!r} (expected {URI_PREFIX}<decimal id>)"
        )
    return int(m[1])


def peer_party_id(stream: _HasPeerCert) -> int:
    """The party id of the peer on a handshaken ``trio.SSLStream`` (or ``ssl.SSLObject``)."""
    der = stream.getpeercert(binary_form=True)
    if not der:
        raise PeerAuthError("peer presented no certificate")
    return party_id_from_cert(der)


def check_peer(stream: _HasPeerCert, expected: int) -> int:
    """Refuse the connection unless the peer's certificate names party ``expected``; return its id.

    The CA signing a certificate only proves it belongs to *some* party of this cluster. Party 1 could
    otherwise connect claiming to be party 2 and receive party 2's messages, so the transport calls
    this on both ends of every connection, with the id it dialled or the id the peer announced.
    """
    got = peer_party_id(stream)
    if got != expected:
        raise PeerAuthError(
            f"peer presented a certificate for party {got}, but this link is to party {expected}"
        )
    return got


# ---------------------------------------------------------------------------------------- files
def write_atomic(path: Path, data: bytes, mode: int) -> None:
    """Write ``data`` to ``path`` via a temp file that has ``mode`` before any byte, then rename.

    ``fchmod`` after ``os.open`` because the umask may have removed bits we want (0644 certificates);
    it never adds bits to the 0600 of a key. The rename makes the file appear whole or not at all.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
    fd = os.open(tmp, os.O_CREAT | os.O_EXCL | os.O_WRONLY | getattr(os, "O_NOFOLLOW", 0), mode)
    try:
        with os.fdopen(fd, "wb") as f:
            os.fchmod(f.fileno(), mode)
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_private_key(path: Path, key: PrivateKey) -> Path:
    """Write ``key`` as unencrypted PKCS#8 PEM, mode 0600 from its creation."""
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    write_atomic(path, pem, 0o600)
    return path


def write_cert(path: Path, cert: x509.Certificate) -> Path:
    """Write ``cert`` as PEM, mode 0644 (certificates are public)."""
    write_atomic(path, cert.public_bytes(serialization.Encoding.PEM), 0o644)
    return path


def _read(path: Path, what: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except FileNotFoundError:
        raise ConfigError(f"{what} {path} does not exist") from None
    except OSError as e:
        raise ConfigError(f"cannot read {what} {path}: {e.strerror or e}") from None


def load_cert(path: Path) -> x509.Certificate:
    """The first certificate of a PEM file; ConfigError naming the file if it is missing or not PEM."""
    data = _read(path, "certificate")
    try:
        return x509.load_pem_x509_certificate(data)
    except ValueError as e:
        raise ConfigError(f"{path} is not a PEM certificate: {e}") from None


def check_key_file(path: Path) -> None:
    """Refuse a private key that group or others can access, as ssh does: it may already have leaked."""
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        raise ConfigError(f"private key {path} does not exist") from None
    except OSError as e:
        raise ConfigError(f"cannot stat private key {path}: {e.strerror or e}") from None
    if mode & 0o077:
        raise ConfigError(
            f"private key {path} is accessible by group or others (mode {mode & 0o777:04o}); "
            f"run: chmod 600 {path}"
        )


def load_key(path: Path) -> ec.EllipticCurvePrivateKey:
    """An unencrypted PEM ECDSA private key, after checking that only its owner can read it."""
    check_key_file(path)
    data = _read(path, "private key")
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError) as e:
        raise ConfigError(f"{path} is not an unencrypted PEM private key: {e}") from None
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise ConfigError(f"{path} holds a {type(key).__name__}; spdz keys are ECDSA (spdz keygen)")
    return key


def verify_issued_by(cert: x509.Certificate, ca: x509.Certificate) -> bool:
    """True iff ``ca`` issued ``cert`` (issuer name and signature). Validity dates are not checked."""
    try:
        cert.verify_directly_issued_by(ca)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True


# ---------------------------------------------------------------------------------------- clusters
def issue_party(
    ca_dir: Path,
    party: int,
    out_dir: Path,
    *,
    host: str | None = None,
    days: int = PARTY_DAYS,
    not_valid_before: datetime | None = None,
    not_valid_after: datetime | None = None,
    force: bool = False,
) -> tuple[Path, Path]:
    """Issue one more party certificate from the CA in ``ca_dir``; write ``out_dir/cert.pem, key.pem``.

    For re-issuing an expiring certificate, and for tests that need a certificate the cluster did not
    make (another party's id, expired dates). Returns (cert path, key path).
    """
    ca_dir, out_dir = Path(ca_dir), Path(out_dir)
    ca_cert = load_cert(ca_dir / CA_CERT)
    ca_key = load_key(ca_dir / CA_KEY)
    targets = [out_dir / CERT, out_dir / KEY]
    _refuse_overwrite(out_dir, targets, force)
    cert, key = issue_party_cert(
        party,
        ca_cert=ca_cert,
        ca_key=ca_key,
        host=host,
        days=days,
        not_valid_before=not_valid_before,
        not_valid_after=not_valid_after,
    )
    write_private_key(out_dir / KEY, key)
    write_cert(out_dir / CERT, cert)
    return out_dir / CERT, out_dir / KEY


def _refuse_overwrite(root: Path, targets: Sequence[Path], force: bool) -> None:
    if force:
        return
    existing = [p for p in targets if p.exists() or p.is_symlink()]
    if existing:
        shown = ", ".join(
            str(p.relative_to(root)) if p.is_relative_to(root) else str(p) for p in existing[:4]
        )
        more = f" and {len(existing) - 4} more" if len(existing) > 4 else ""
        raise ConfigError(
            f"{root} already holds keys or certificates ({shown}{more}); refusing to overwrite them. "
            f"Use another directory, or force=True (spdz keygen --force) to replace them"
        )


def default_listen_host(host: str) -> str:
    """Where a party listens, given the address its peers dial: loopback stays loopback, else all."""
    if host == "localhost":
        return "127.0.0.1"
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return "0.0.0.0"  # noqa: S104 - a daemon with a DNS name serves on every interface
    if ip.is_loopback:
        return host
    return "::" if ip.version == 6 else "0.0.0.0"  # noqa: S104


_README = """\
trio-spdz cluster keys, written by `spdz keygen`.

  ca.pem              the cluster CA certificate (public)
  ca-key.pem          the CA PRIVATE key: only needed to issue certificates. Move it OFFLINE
                      (or delete it) now; whoever holds it can impersonate any party.
  party<i>/           everything party i needs, and nothing else: copy this directory (and only
                      this one) to party i's machine
    ca.pem            copy of the CA certificate
    cert.pem          party i's certificate (identity: URI SAN spdz://party/<i>)
    key.pem           party i's PRIVATE key (mode 0600)
    party.toml        party i's configuration (layout: actors/config.py); edit hosts/ports there
"""


def make_cluster(
    out_dir: Path,
    parties: int,
    hosts: list[str] | None = None,
    base_port: int = DEFAULT_BASE_PORT,
    days: int = PARTY_DAYS,
    *,
    ca_days: int = CA_DAYS,
    field: str = "p127",
    force: bool = False,
) -> list[Path]:
    """Create a CA, a certificate and key per party and one ``party.toml`` each; return the files.

    Party i listens on ``base_port + i``; its peers dial ``hosts[i]`` (default 127.0.0.1 for all, a
    one-machine cluster). Refuses to overwrite existing keys unless ``force``. The CA key is written
    (0600) because issuing another party later needs it; README.txt says to move it offline.
    """
    from .config import PartyConfig, write_config  # config validates with this module: import late

    out_dir = Path(out_dir).absolute()  # configs store paths relative to their own directory
    if not isinstance(parties, int) or isinstance(parties, bool) or parties < 2:
        raise ConfigError(f"a cluster needs at least 2 parties, got {parties!r}")
    hosts = ["127.0.0.1"] * parties if hosts is None else list(hosts)
    if len(hosts) != parties:
        raise ConfigError(
            f"{len(hosts)} hosts given for {parties} parties: give one host per party, in order"
        )
    for h in hosts:
        check_host(h)
    if not 1 <= base_port or base_port + parties - 1 > 65535:
        raise ConfigError(f"ports {base_port}..{base_port + parties - 1} are not all in 1..65535")
    if days < 1 or ca_days < 1:
        raise ConfigError(f"validity must be at least 1 day (days={days}, ca_days={ca_days})")

    dirs = [out_dir / f"party{i}" for i in range(parties)]
    targets = [out_dir / CA_CERT, out_dir / CA_KEY]
    for d in dirs:
        targets += [d / CA_CERT, d / CERT, d / KEY, d / CONFIG]
    _refuse_overwrite(out_dir, targets, force)

    ca_cert, ca_key = create_ca(days=ca_days)
    written = [write_private_key(out_dir / CA_KEY, ca_key), write_cert(out_dir / CA_CERT, ca_cert)]
    for i, d in enumerate(dirs):
        cert, key = issue_party_cert(i, ca_cert=ca_cert, ca_key=ca_key, host=hosts[i], days=days)
        written.append(write_private_key(d / KEY, key))
        written.append(write_cert(d / CERT, cert))
        written.append(write_cert(d / CA_CERT, ca_cert))
        cfg = PartyConfig.for_cluster(
            party=i,
            n=parties,
            hosts=hosts,
            ports=[base_port + j for j in range(parties)],
            listen_host=default_listen_host(hosts[i]),
            tls=TlsFiles(ca=d / CA_CERT, cert=d / CERT, key=d / KEY),
            config_dir=d,
            field=field,
        )
        written.append(write_config(cfg, d / CONFIG))
    readme = out_dir / "README.txt"
    write_atomic(readme, _README.encode(), 0o644)
    written.append(readme)
    return written


# ---------------------------------------------------------------------------------------- TLS
def _tls_of(source: TlsFiles | _HasTls) -> TlsFiles:
    return source if isinstance(source, TlsFiles) else source.tls


def _context(protocol: int, source: TlsFiles | _HasTls) -> ssl.SSLContext:
    tls = _tls_of(source)
    ctx = ssl.SSLContext(protocol)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    ctx.maximum_version = ssl.TLSVersion.TLSv1_3
    ctx.check_hostname = False  # identity is the party-id SAN, checked by check_peer after the handshake
    ctx.verify_mode = ssl.CERT_REQUIRED
    ctx.verify_flags |= ssl.VERIFY_X509_STRICT
    for what, path in (("CA certificate", tls.ca), ("certificate", tls.cert)):
        if not Path(path).is_file():
            raise ConfigError(f"{what} {path} does not exist")
    check_key_file(tls.key)
    try:
        ctx.load_verify_locations(cafile=str(tls.ca))
    except ssl.SSLError as e:
        raise ConfigError(f"cannot use {tls.ca} as the CA certificate: {e}") from None
    try:
        ctx.load_cert_chain(str(tls.cert), str(tls.key))
    except ssl.SSLError as e:
        raise ConfigError(f"cannot use certificate {tls.cert} with key {tls.key}: {e}") from None
    return ctx


def server_context(source: TlsFiles | _HasTls) -> ssl.SSLContext:
    """TLS 1.3 only, requires and verifies the client's certificate against the cluster CA.

    ``source`` is a ``TlsFiles`` or anything with a ``.tls`` (a ``PartyConfig``).
    """
    return _context(ssl.PROTOCOL_TLS_SERVER, source)


def client_context(source: TlsFiles | _HasTls) -> ssl.SSLContext:
    """TLS 1.3 only, presents this party's certificate and verifies the server's against the CA."""
    return _context(ssl.PROTOCOL_TLS_CLIENT, source)
