"""emmett-valkey: a Valkey cache handler for Emmett, wire-compatible with Emmett's ``RedisCache``."""

from .cache import ValkeyCache
from .config import ENV_VARIABLES, ConfigError
from .local import LocalCache
from .operations import TRANSIENT_ERRORS
from .serializers import (
    EmmettPickleSerializer,
    JSONSerializer,
    SerializationError,
    Serializer,
    SignedPickleSerializer,
)

__version__ = "0.1.0"

__all__ = [
    "ENV_VARIABLES",
    "TRANSIENT_ERRORS",
    "ConfigError",
    "EmmettPickleSerializer",
    "JSONSerializer",
    "LocalCache",
    "SerializationError",
    "Serializer",
    "SignedPickleSerializer",
    "ValkeyCache",
    "__version__",
]
