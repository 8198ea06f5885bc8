"""The Party actor: one organisation's node, supervising its transport, offline service and engine.

Two ways to build one:

* from parts, as ``local_cluster`` and the daemon do: ``Party(id, n, links, source)``, then ``serve``
  in a nursery of the caller's;
* from a party config (the embedding API), inside another Trio service::

      async with actors.Party("/etc/spdz/party0/party.toml") as p:   # or a PartyConfig
          out = await p.run(prog, *args, session="q3-report")

  which builds the TLS links (``TlsConnector`` / ``TlsListener``), the MASCOT offline service (or the
  INSECURE dealer only if the config explicitly allows it) and the engine, serves them for the life of
  the ``async with`` block and stops them on exit. ``run`` waits while the preprocessing is not ready
  (peers not yet connected, MAC key set-up), so parties may start in any order.
"""

from __future__ import annotations

import hashlib
import os
from types import TracebackType
from typing import TYPE_CHECKING, Any

import trio

from protocols.field import PrimeField
from protocols.ot.extension import DEFAULT as DEFAULT_OT
from protocols.preprocessing.base import PreprocessingSource

from .config import PartyConfig, load_config
from .engine import Engine, Interceptor, Program
from .offline import OfflineService, Watermarks

if TYPE_CHECKING:
    from protocols.dp.allowance import Declared
    from protocols.online import Session

    from .budget import BudgetLedger


class Party:
    def __init__(
        self,
        party: int | PartyConfig | str | os.PathLike[str],
        n: int | None = None,
        links: Any = None,
        source: PreprocessingSource | None = None,
        *,
        interceptor: Interceptor | None = None,
        session_options: dict[str, Any] | None = None,
        handshake_timeout: float | None = None,
    ) -> None:
        self.listener: Any = None
        self.connector: Any = None
        self.config: PartyConfig | None = None
        self.port: int | None = None
        self._ledger: Any = None  # the privacy budget ledger, opened on first use (``ledger``)
        self.ledger_lock = trio.Lock()
        self._nursery_cm: Any = None
        self._nursery: trio.Nursery | None = None
        if not isinstance(party, int):
            self._from_config(party, interceptor, session_options, handshake_timeout)
            return
        if n is None or links is None:
            raise TypeError("Party(id, n, links, source) or Party(config)")
        self._init(party, n, links, source, interceptor, session_options)

    def _from_config(
        self,
        config: PartyConfig | str | os.PathLike[str],
        interceptor: Interceptor | None,
        session_options: dict[str, Any] | None,
        handshake_timeout: float | None = None,
    ) -> None:
        """The TLS links, listener and preprocessing a config describes (``handshake_timeout``: the
        TLS and link handshakes' deadline in seconds, default theirs)."""
        from protocols.field import get_field

        from .links import StreamLinks
        from .peerlink import LinkConfig
        from .tls import TlsConnector, TlsListener

        cfg = config if isinstance(config, PartyConfig) else load_config(config)
        self.config = cfg
        hs: dict[str, float] = {} if handshake_timeout is None else {"handshake_timeout": handshake_timeout}
        connector = TlsConnector(cfg.party, cfg.peers, cfg.tls, **hs)
        self.connector = connector
        links = StreamLinks(
            cfg.party,
            cfg.n,
            connector,
            config=LinkConfig(
                peer_timeout=cfg.peer_timeout,
                idle_timeout=cfg.idle_timeout,
                backoff_initial=cfg.reconnect.initial,
                backoff_max=cfg.reconnect.max,
                **hs,
            ),
        )
        field = get_field(cfg.field)
        source: Any = None
        if cfg.preprocessing == "dealer":  # load_config accepts it only with insecure_dealer = true
            from protocols.preprocessing.dealer import InsecureDealer

            source = InsecureDealer(field, cfg.n, cfg.party, dealer_seed(cfg))
        options = {"king_min": cfg.king_min, **(session_options or {})}
        self._init(cfg.party, cfg.n, links, source, interceptor, options)
        if source is None:
            self.use_mascot(field, cfg.watermarks, cfg.ot_extension)
        peer_hosts = {a.host for j, a in cfg.peers.items() if j < cfg.party}  # the ones that dial us
        self.listener = TlsListener(cfg.party, cfg.listen, cfg.tls, links, peer_hosts=peer_hosts, **hs)

    def _init(
        self,
        party: int,
        n: int,
        links: Any,
        source: Any,
        interceptor: Interceptor | None,
        session_options: dict[str, Any] | None,
    ) -> None:
        self.id = party
        self.n = n
        self.links = links
        self.source = source
        self.engine = Engine(
            party, n, links, source, interceptor=interceptor, session_options=session_options
        )
        self.offline: OfflineService | None = None
        if hasattr(links, "on_peer_lost"):  # stream links: a peer gone too long aborts its sessions
            links.on_peer_lost = self.engine.abort_sessions_with

    def use_mascot(
        self, field: PrimeField, watermarks: Watermarks | None = None, ot_extension: str = DEFAULT_OT
    ) -> OfflineService:
        """Make this party's preprocessing a MASCOT ``OfflineService`` (started by ``serve``) on the
        named OT extension (``protocols.ot.extension``; the same at every party)."""
        self.offline = OfflineService(self.engine, field, self.id, self.n, watermarks, ot_extension)
        self.engine.source = self.offline
        self.source = self.offline
        return self.offline

    async def serve(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Run the party's children (transport, offline service) until cancelled."""
        async with trio.open_nursery() as nursery:
            await nursery.start(self.links.serve, self.engine.on_frame)
            if self.offline is not None:
                await nursery.start(self.offline.serve)
            task_status.started()

    @property
    def ledger(self) -> BudgetLedger | None:
        """This party's privacy budget ledger (``[budget]`` in its config), opened on first use; None
        without budgets (or a party built from parts: ``attach_ledger``)."""
        if self._ledger is None and self.config is not None and self.config.budgets:
            from .budget import BudgetLedger

            self._ledger = BudgetLedger(self.config.ledger_path, self.config.budgets)
        return self._ledger

    def attach_ledger(self, ledger: BudgetLedger) -> None:
        """Use ``ledger`` for this party's budgets (a party built from parts, or a test's)."""
        self._ledger = ledger

    def close_ledger(self) -> None:
        if self._ledger is not None:
            self._ledger.close()
            self._ledger = None

    async def run(
        self,
        prog: Program,
        *args: Any,
        session: str | None = None,
        dp: Declared | None = None,
        timeout: float = 60.0,
        options: dict[str, Any] | None = None,
    ) -> Any:
        """Run ``prog`` as one session (every party must run the same program under the same id).
        ``options``: ``Session`` options for this session (over the party's own; the same at every
        party, e.g. a registered program's ``session``).

        With ``dp=Declared(dataset, epsilon, delta, ...)``: the program's total privacy cost. Every
        party first compares the declarations, then checks and charges its own ledger
        (``actors.privacy``; ``BudgetExceeded`` at every party if any refuses), and the program's
        noisy outputs (``s.output(x, dp=...)``) are held to the declaration (``s.privacy``).
        ``timeout`` bounds those rounds' waits for the other parties."""
        if dp is None:
            return await self.engine.run(prog, *args, session=session, options=options)
        from . import privacy

        async def guarded(s: Session, *a: Any) -> Any:
            await privacy.agree_declaration(s, dp, timeout)
            await privacy.charge_session(s, self, dp, timeout)
            return await prog(s, *a)

        return await self.engine.run(guarded, *args, session=session, options=options)

    # ------------------------------------------------------------------ embedding
    async def __aenter__(self) -> Party:
        """Start the listener (if built from a config) and the party's services in a nursery owned
        by this ``async with`` block."""
        self._nursery_cm = trio.open_nursery()
        nursery = await self._nursery_cm.__aenter__()
        try:
            if self.listener is not None:
                self.port = await nursery.start(self.listener.serve)
            await nursery.start(self.serve)
        except BaseException as e:
            nursery.cancel_scope.cancel()
            await self._nursery_cm.__aexit__(type(e), e, e.__traceback__)
            raise
        self._nursery = nursery
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> bool | None:
        assert self._nursery is not None and self._nursery_cm is not None
        flush = getattr(self.links, "flush", None)
        if flush is not None:  # our last messages (a final reveal, an abort) reach the peers first
            with trio.CancelScope(shield=True):
                await flush(5.0)
        self._nursery.cancel_scope.cancel()
        try:
            return await self._nursery_cm.__aexit__(exc_type, exc, tb)
        except BaseExceptionGroup as group:
            if len(group.exceptions) == 1:  # the block's own error, not wrapped in the nursery's group
                raise group.exceptions[0] from None
            raise
        finally:
            self._nursery = None
            self.close_ledger()


def dealer_seed(cfg: PartyConfig) -> bytes:
    """The INSECURE dealer's shared seed, from the cluster CA certificate every party holds."""
    return hashlib.sha256(b"trio-spdz/insecure-dealer-seed/v1" + cfg.tls.ca.read_bytes()).digest()
