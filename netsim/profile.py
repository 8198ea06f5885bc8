"""Fault profiles: the shape of a simulated link and the faults injected on it, and their spec language.

A profile is what ``spdz simulate --faults SPEC`` takes, so it has a textual form that a user can type,
read back in a report, and paste into ``--replay``. ``str(profile)`` is that form, and
``FaultProfile.parse(str(profile)) == profile`` holds exactly (units are only used where they round-trip).

Grammar (terms are applied left to right; a key may appear once; spaces around terms are ignored)::

    spec      := "" | term ("," term)*
    term      := PROFILE                      only as the first term: start from a named profile
               | "latency"   "=" DURATION     one-way delay of every chunk
               | "jitter"    "=" DURATION     each send_all's delay is latency +- uniform(jitter), >= 0
               | "bandwidth" "=" SIZE["/s"]   bytes per second, or "inf"; links serialize one chunk at a time
               | "window"    "=" SIZE         bytes in flight + unread before send_all blocks, or "inf"
               | "reset"     "=" PROB         per send_all: the connection is reset (both ends broken)
               | "stall"     "=" PROB ":" DURATION   per send_all: this direction is held for DURATION
               | "corrupt"   "=" PROB         per send_all: 1-3 bits of the chunk are flipped
               | "truncate"  "=" PROB         per send_all: only a prefix arrives, then the connection resets
               | "half_open" "=" PROB         per send_all: this direction silently drops everything from now
               | "cut"       "=" SIZE [":" SIZE]   per connection and direction: after a number of bytes
                                              drawn from SIZE..SIZE, a prefix arrives and the connection
                                              resets (resets shorter than one large frame)
               | "partition" "=" RATE ":" DURATION   network-wide: random two-group partitions, healed after
               | "crash"     "=" RATE ":" DURATION   network-wide: a random party crashes, restarts after
               | "restart"   "=" DURATION     once per run: an honest party's process dies during the
                                              first session (state lost, kill -9) and a new one starts
                                              after DURATION; then one more session must be right
    DURATION  := NUMBER ("us" | "ms" | "s" | "min" | "h")?        (bare number: seconds)
    SIZE      := NUMBER ("B" | "KB" | "MB" | "GB" | "KiB" | "MiB" | "GiB" | "bit" | "Kbit" | "Mbit" | "Gbit")?
    PROB      := NUMBER in [0, 1] | NUMBER "%"
    RATE      := NUMBER ("/s" | "/min" | "/h")?                    (events per virtual second by default)

Units are case-insensitive; decimal (KB = 1000 B) and binary (KiB = 1024 B) prefixes both exist because
link speeds are quoted in the one and buffer sizes in the other.

Per-chunk probabilities are drawn once per ``send_all`` call (not per byte, not per internal piece), so a
fault schedule depends only on what the application sends, never on how the simulator splits it.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from types import MappingProxyType

from protocols.errors import ConfigError

DEFAULT_WINDOW = 4 * 1024 * 1024


class FaultSpecError(ConfigError, ValueError):
    """A fault spec (``--faults``) could not be parsed; the message names the offending term."""


@dataclass(frozen=True)
class FaultProfile:
    """Shape and faults of a directed link; ``partition`` and ``crash`` apply to the whole network.

    Times are virtual seconds, sizes bytes, probabilities per ``send_all`` call, rates per virtual second.
    ``bandwidth=None`` and ``window=None`` mean unlimited; ``window=0`` makes a rendezvous link, where a
    sender can only hand bytes to a reader that is already waiting (the "clogged" stream of trio's checks).
    """

    latency: float = 0.0
    jitter: float = 0.0
    bandwidth: float | None = None
    window: int | None = DEFAULT_WINDOW
    reset: float = 0.0
    stall: float = 0.0
    stall_for: float = 0.0
    corrupt: float = 0.0
    truncate: float = 0.0
    half_open: float = 0.0
    cut: int = 0  # bytes per connection direction before a reset, drawn from cut..cut_max (0: off)
    cut_max: int = 0
    partition: float = 0.0
    partition_for: float = 0.0
    crash: float = 0.0
    crash_for: float = 0.0
    restart: float = 0.0  # seconds a restarted party stays down (0: no restart)

    def __post_init__(self) -> None:
        for name in (
            "latency",
            "jitter",
            "stall_for",
            "partition_for",
            "crash_for",
            "partition",
            "crash",
            "restart",
        ):
            v = getattr(self, name)
            if not (math.isfinite(v) and v >= 0):
                raise FaultSpecError(f"{name} must be a finite number >= 0, not {v!r}")
        for name in _PROBABILITIES:
            v = getattr(self, name)
            if not (0.0 <= v <= 1.0):
                raise FaultSpecError(f"{name} must be a probability in [0, 1], not {v!r}")
        if self.bandwidth is not None and not (math.isfinite(self.bandwidth) and self.bandwidth > 0):
            raise FaultSpecError(f"bandwidth must be > 0 bytes/s or None (unlimited), not {self.bandwidth!r}")
        if self.window is not None and self.window < 0:
            raise FaultSpecError(f"window must be >= 0 bytes or None (unlimited), not {self.window!r}")
        if self.cut < 0 or self.cut_max < self.cut or (self.cut_max and not self.cut):
            raise FaultSpecError(f"cut needs 0 < SIZE <= SIZE, not {self.cut}:{self.cut_max}")
        for rate in ("stall", "partition", "crash"):
            if getattr(self, rate) > 0 and getattr(self, rate + "_for") <= 0:
                raise FaultSpecError(f"{rate} needs a duration > 0 ({rate}=...:DURATION)")

    @classmethod
    def parse(cls, spec: str) -> FaultProfile:
        """Parse a fault spec (grammar in the module docstring); raise ``FaultSpecError`` naming the term."""
        values: dict[str, object] = {}
        seen: set[str] = set()
        base = cls()
        terms = [t.strip() for t in spec.split(",")] if spec.strip() else []
        for pos, term in enumerate(terms):
            if not term:
                raise FaultSpecError(f"empty term in fault spec {spec!r} (stray comma?)")
            if "=" not in term:
                if term not in PROFILES:
                    raise FaultSpecError(
                        f"bad fault spec term {term!r}: not a key=value pair nor a profile name "
                        f"(profiles: {', '.join(PROFILES)}; keys: {', '.join(_KEYS)})"
                    )
                if pos != 0:
                    raise FaultSpecError(f"bad fault spec term {term!r}: a profile name must come first")
                base = PROFILES[term]
                continue
            key, _, text = (s.strip() for s in term.partition("="))
            if key not in _KEYS:
                raise FaultSpecError(
                    f"bad fault spec term {term!r}: unknown key {key!r} (keys: {', '.join(_KEYS)})"
                )
            if key in seen:
                raise FaultSpecError(f"bad fault spec term {term!r}: {key} is given twice")
            seen.add(key)
            try:
                parsed = _KEYS[key](key, text)
                cls(**parsed)  # type: ignore[arg-type]  # range checks, reported against this term
            except ValueError as e:
                raise FaultSpecError(f"bad fault spec term {term!r}: {e}") from None
            values.update(parsed)
        return replace(base, **values)  # type: ignore[arg-type]

    @classmethod
    def of(cls, profile: FaultProfile | str) -> FaultProfile:
        """A profile given as an object, a profile name or a spec string."""
        return profile if isinstance(profile, FaultProfile) else cls.parse(profile)

    def __str__(self) -> str:
        default = FaultProfile()
        out: list[str] = []
        if self.latency != default.latency:
            out.append(f"latency={_fmt(self.latency, _DURATIONS)}")
        if self.jitter != default.jitter:
            out.append(f"jitter={_fmt(self.jitter, _DURATIONS)}")
        if self.bandwidth != default.bandwidth:
            out.append(f"bandwidth={_fmt(self.bandwidth, _SIZES)}")
        if self.window != default.window:
            out.append(f"window={_fmt(self.window, _SIZES)}")
        if self.reset:
            out.append(f"reset={self.reset!r}")
        if self.stall:
            out.append(f"stall={self.stall!r}:{_fmt(self.stall_for, _DURATIONS)}")
        for name in ("corrupt", "truncate", "half_open"):
            if getattr(self, name):
                out.append(f"{name}={getattr(self, name)!r}")
        if self.cut:
            out.append(f"cut={_fmt(self.cut, _SIZES)}:{_fmt(self.cut_max, _SIZES)}")
        for name in ("partition", "crash"):
            if getattr(self, name):
                out.append(f"{name}={getattr(self, name)!r}:{_fmt(getattr(self, name + '_for'), _DURATIONS)}")
        if self.restart:
            out.append(f"restart={_fmt(self.restart, _DURATIONS)}")
        return ",".join(out)

    @property
    def has_faults(self) -> bool:
        """True if any fault (not just latency, jitter, bandwidth or window) can be injected."""
        return any(getattr(self, name) for name in (*_PROBABILITIES, "cut", "partition", "crash", "restart"))

    def without_faults(self) -> FaultProfile:
        """The same link shape with every fault rate set to zero."""
        return FaultProfile(
            latency=self.latency, jitter=self.jitter, bandwidth=self.bandwidth, window=self.window
        )


_PROBABILITIES = ("reset", "stall", "corrupt", "truncate", "half_open")

_DURATIONS: tuple[tuple[str, float], ...] = (
    ("h", 3600.0),
    ("min", 60.0),
    ("s", 1.0),
    ("ms", 1e-3),
    ("us", 1e-6),
)
_SIZES: tuple[tuple[str, float], ...] = (
    ("GiB", 2.0**30),
    ("GB", 1e9),
    ("MiB", 2.0**20),
    ("MB", 1e6),
    ("KiB", 1024.0),
    ("KB", 1e3),
    ("B", 1.0),
    ("Gbit", 1e9 / 8),
    ("Mbit", 1e6 / 8),
    ("Kbit", 1e3 / 8),
    ("bit", 1 / 8),
)
_RATES: tuple[tuple[str, float], ...] = (("/s", 1.0), ("/min", 1 / 60), ("/h", 1 / 3600))
_NUMBER = re.compile(r"^([0-9]*\.?[0-9]+(?:[eE][+-]?[0-9]+)?)\s*(.*)$")


def _number(text: str, units: Iterable[tuple[str, float]], what: str, default_unit: str) -> float:
    m = _NUMBER.match(text.strip())
    table = {u.lower(): f for u, f in units}
    names = ", ".join(u for u, _ in units)
    if not m:
        raise ValueError(f"{text!r} is not a {what} (a number with an optional unit: {names})")
    number, unit = m.groups()
    unit = unit.strip().lower() or default_unit.lower()
    if unit not in table:
        raise ValueError(f"{text!r}: unknown unit {unit!r} for a {what} (units: {names})")
    return float(number) * table[unit]


def _duration(text: str) -> float:
    return _number(text, _DURATIONS, "duration", "s")


def _size(text: str, *, per_second: bool = False) -> float | None:
    t = text.strip()
    if per_second and t.lower().endswith("/s"):
        t = t[:-2]
    if t.lower() == "inf":
        return None
    return _number(t, _SIZES, "size", "B")


def _probability(text: str) -> float:
    t = text.strip()
    scale = 1.0
    if t.endswith("%"):
        t, scale = t[:-1], 0.01
    m = _NUMBER.match(t)
    if not m or m.group(2):
        raise ValueError(f"{text!r} is not a probability (a number in [0, 1] or a percentage)")
    p = float(m.group(1)) * scale
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"probability {text!r} is not in [0, 1]")
    return p


def _rate(text: str) -> float:
    t, factor = text.strip(), 1.0
    for unit, f in _RATES:
        if t.lower().endswith(unit):
            t, factor = t[: -len(unit)], f
            break
    m = _NUMBER.match(t)
    if not m or m.group(2):
        raise ValueError(f"{text!r} is not a rate (events per virtual second: N, N/s, N/min or N/h)")
    return float(m.group(1)) * factor


def _split(key: str, text: str) -> tuple[str, str]:
    first, sep, second = text.partition(":")
    if not sep or not second.strip():
        raise ValueError(f"{key} takes two values, {key}=RATE:DURATION (e.g. {key}=0.01:500ms)")
    return first, second


def _k_latency(key: str, text: str) -> dict[str, object]:
    return {key: _duration(text)}


def _k_bandwidth(key: str, text: str) -> dict[str, object]:
    return {key: _size(text, per_second=True)}


def _k_window(key: str, text: str) -> dict[str, object]:
    size = _size(text)
    if size is not None and size != int(size):
        raise ValueError(f"window {text!r} is not a whole number of bytes")
    return {key: None if size is None else int(size)}


def _k_probability(key: str, text: str) -> dict[str, object]:
    return {key: _probability(text)}


def _k_stall(key: str, text: str) -> dict[str, object]:
    p, d = _split(key, text)
    return {key: _probability(p), key + "_for": _duration(d)}


def _k_cut(key: str, text: str) -> dict[str, object]:
    first, _, second = text.partition(":")
    lo, hi = _size(first), _size(second or first)
    if lo is None or hi is None or lo != int(lo) or hi != int(hi) or not 0 < lo <= hi:
        raise ValueError(f"cut takes whole byte counts 0 < SIZE <= SIZE, e.g. cut=256KiB:1MiB, not {text!r}")
    return {"cut": int(lo), "cut_max": int(hi)}


def _k_timeline(key: str, text: str) -> dict[str, object]:
    r, d = _split(key, text)
    return {key: _rate(r), key + "_for": _duration(d)}


_KEYS = {
    "latency": _k_latency,
    "jitter": _k_latency,
    "bandwidth": _k_bandwidth,
    "window": _k_window,
    "reset": _k_probability,
    "stall": _k_stall,
    "corrupt": _k_probability,
    "truncate": _k_probability,
    "half_open": _k_probability,
    "cut": _k_cut,
    "partition": _k_timeline,
    "crash": _k_timeline,
    "restart": _k_latency,
}


def _fmt(value: float | int | None, units: tuple[tuple[str, float], ...]) -> str:
    """The shortest ``NUMBER UNIT`` that parses back to exactly ``value`` (``inf`` for None)."""
    if value is None:
        return "inf"
    if value == 0:
        return "0"
    for unit, factor in units:
        q = value / factor
        if q < 1:
            continue
        text = f"{q:.12g}"
        if float(text) * factor == value and "e" not in text:
            return text + unit
    return repr(float(value))


# Named profiles, as spec strings so that ``--list`` can show exactly what each one means.
PROFILE_SPECS: Mapping[str, str] = MappingProxyType(
    {
        "none": "",
        "wan": "latency=40ms,jitter=5ms,bandwidth=12.5MB",
        "flaky": "latency=5ms,jitter=2ms,bandwidth=100MB,reset=0.01,stall=0.02:500ms",
        "lossy": "latency=10ms,jitter=5ms,bandwidth=50MB,corrupt=0.005,truncate=0.002,half_open=0.001",
        "partition": "latency=5ms,jitter=1ms,bandwidth=100MB,partition=0.1:2s",
        "chaos": (
            "latency=5ms,jitter=2ms,bandwidth=100MB,reset=0.005,stall=0.01:200ms,corrupt=0.002,"
            "truncate=0.001,half_open=0.0005,partition=0.05:1s,crash=0.02:500ms"
        ),
    }
)

PROFILES: Mapping[str, FaultProfile] = MappingProxyType(
    {name: FaultProfile.parse(spec) for name, spec in PROFILE_SPECS.items()}
)

__all__ = ["DEFAULT_WINDOW", "PROFILES", "PROFILE_SPECS", "FaultProfile", "FaultSpecError"]
