"""The server catalogue, provisioning, running servers and the report builder.

Provisioning (sources, binary cache, identity) finds a binary; :func:`~emmett_valkey_matrix.running.launch` runs what
a run id names. Knows nothing of Emmett. See ``matrix/README.md`` for the contract used by ``certification/``.
"""

from .catalogue import CatalogueError, Entry, Source, load_catalogue
from .cluster import ClusterNode, LocalCluster, start_cluster
from .executor import ExternalServer, LocalServer, NotSupported, ServerOptions, StartError, TLSFiles
from .identify import IntegrityError
from .provision import Resolved, resolve
from .run_id import RunId, Topology
from .running import Running, launch
from .sources.base import Binary, NotAvailable

__version__ = "0.1.0"  # the emmett-valkey-matrix distribution's version (matrix/pyproject.toml reads it)

RunningServer = LocalServer | ExternalServer

__all__ = [
    "Binary",
    "CatalogueError",
    "ClusterNode",
    "Entry",
    "ExternalServer",
    "IntegrityError",
    "LocalCluster",
    "LocalServer",
    "NotAvailable",
    "NotSupported",
    "Resolved",
    "RunId",
    "Running",
    "RunningServer",
    "ServerOptions",
    "Source",
    "StartError",
    "TLSFiles",
    "Topology",
    "__version__",
    "launch",
    "load_catalogue",
    "resolve",
    "start_cluster",
]
