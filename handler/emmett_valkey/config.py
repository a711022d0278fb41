"""Configuration from the environment: ``ValkeyCache.from_env()`` reads these variables."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from .durations import check_seconds

#: variable -> (constructor argument, default shown in docs/configuration.md, which a test keeps in step)
ENV_VARIABLES: dict[str, tuple[str, str]] = {
    "VALKEY_URL": ("url", "unset (host/port/db are used)"),
    "VALKEY_HOST": ("host", "localhost"),
    "VALKEY_PORT": ("port", "6379"),
    "VALKEY_DB": ("db", "0"),
    "VALKEY_USERNAME": ("username", "unset"),
    "VALKEY_PASSWORD": ("password", "unset"),
    "VALKEY_PREFIX": ("prefix", "cache:"),
    "VALKEY_EXPIRE": ("default_expire", "300"),
    "VALKEY_CLUSTER": ("cluster", "0 (1: the host or URL is a seed node of a Valkey Cluster)"),
}


class ConfigError(ValueError):
    """A configuration value is unusable; the message names the setting and the value."""


def _int(name: str, raw: str, low: int, high: int | None) -> int:
    try:
        value = int(raw.strip())
    except ValueError:
        value = None
    if value is None or value < low or (high is not None and value > high):
        bound = f"from {low} to {high}" if high is not None else f"of at least {low}"
        raise ConfigError(f"{name}={raw!r}: expected an integer {bound}")
    return value


def _seconds(name: str, raw: str) -> int | float:
    try:
        number: int | float = int(raw.strip())
    except ValueError:
        try:
            number = float(raw.strip())
        except ValueError:
            raise ConfigError(f"{name}={raw!r}: expected a positive number of seconds") from None
    try:
        return check_seconds(number, name)
    except ValueError:
        raise ConfigError(f"{name}={raw!r}: expected a positive number of seconds") from None


def _flag(name: str, raw: str) -> bool:
    value = raw.strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off", ""):
        return False
    raise ConfigError(f"{name}={raw!r}: expected 1 or 0 (true/false, yes/no, on/off)")


def settings_from_env(environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Read the ``VALKEY_*`` variables that are set into constructor keyword arguments, checking each."""
    env = os.environ if environ is None else environ
    out: dict[str, Any] = {}
    for name, (argument, _default) in ENV_VARIABLES.items():
        raw = env.get(name)
        if raw is None:
            continue
        if name == "VALKEY_PORT":
            out[argument] = _int(name, raw, 1, 65535)
        elif name == "VALKEY_DB":
            out[argument] = _int(name, raw, 0, None)
        elif name == "VALKEY_EXPIRE":
            out[argument] = _seconds(name, raw)
        elif name == "VALKEY_CLUSTER":
            out[argument] = _flag(name, raw)
        elif name in ("VALKEY_URL", "VALKEY_HOST"):
            if not raw.strip():
                raise ConfigError(f"{name}={raw!r}: must not be empty")
            out[argument] = raw.strip()
        else:
            out[argument] = raw
    return out
