"""The server catalogue, provisioning (sources, binary cache, executor) and the report builder.

Knows nothing of Emmett. See ``matrix/README.md`` for the contract used by ``certification/``.
"""

from .catalogue import CatalogueError, Entry, Source, load_catalogue
from .cluster import ClusterNode, LocalCluster, start_cluster
from .executor import ExternalServer, LocalServer, NotSupported, ServerOptions, StartError, TLSFiles
from .identify import IntegrityError
from .provision import Resolved, resolve
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
    "RunningServer",
    "ServerOptions",
    "Source",
    "StartError",
    "TLSFiles",
    "__version__",
    "load_catalogue",
    "resolve",
    "start_cluster",
]
