"""trio-spdz actors: parties, engines, transports, the local cluster and the CLI."""

from . import logs
from .cluster import Cluster, local_cluster
from .engine import Engine, Interceptor
from .party import Party

__all__ = ["Cluster", "Engine", "Interceptor", "Party", "local_cluster"]

logs.library_defaults()  # a library logs through ``logging``, silently unless the application asks
