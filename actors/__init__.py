"""trio-spdz actors: parties, engines, transports, the local cluster and the CLI."""

from .cluster import Cluster, local_cluster
from .engine import Engine, Interceptor
from .party import Party

__all__ = ["Cluster", "Engine", "Interceptor", "Party", "local_cluster"]
