"""What the user gives: ``CERTIFY_<ID>_URL`` (a running server), ``CERTIFY_<ID>_BIN`` (a binary), or PATH."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Mapping
from pathlib import Path

from ..identify import Identity, IntegrityError, from_version_output
from .base import Binary, NotAvailable, sha256_file

PATH_NAMES = {"valkey": "valkey-server", "redis": "redis-server"}


def env_name(server_id: str, what: str) -> str:
    """``env_name("valkey72", "URL")`` -> ``CERTIFY_VALKEY72_URL``."""
    return f"CERTIFY_{server_id.upper()}_{what}"


def user_url(server_id: str, environ: Mapping[str, str]) -> str | None:
    """Return the URL the user gave for this id, if any."""
    return environ.get(env_name(server_id, "URL")) or None


def probe_version(path: Path, *, env: Mapping[str, str] | None = None, argv0: str | None = None) -> Identity | None:
    """Run ``<binary> --version`` and parse it (None: a form not known, left to INFO once started).

    :class:`IntegrityError` when it cannot run, fails, or prints no version at all (not a Valkey/Redis server).
    """
    try:
        proc = subprocess.run([argv0 or str(path), "--version"], executable=str(path), env=env,
                              capture_output=True, text=True, timeout=20, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise IntegrityError(f"{path} cannot be run: {exc}") from exc
    if proc.returncode != 0:
        raise IntegrityError(f"{path} --version failed (exit {proc.returncode}): {proc.stderr.strip()[:300]}")
    try:
        return from_version_output(proc.stdout)
    except IntegrityError as exc:
        raise IntegrityError(f"{path}: {exc}") from None


def user_binary(server_id: str, environ: Mapping[str, str]) -> tuple[Binary, Identity | None] | None:
    """Return the binary named by ``CERTIFY_<ID>_BIN``, with what its ``--version`` says it is; None when unset."""
    name = env_name(server_id, "BIN")
    value = environ.get(name)
    if not value:
        return None
    path = Path(value).expanduser()
    if not path.is_file() or not os.access(path, os.X_OK):
        raise NotAvailable(f"{name}={value} is not an executable file")
    try:
        found = probe_version(path)
    except IntegrityError as exc:
        raise IntegrityError(f"{name}={value}: {str(exc).removeprefix(f'{path}: ')}") from None
    source = {"kind": "user-binary", "detail": f"{name}={path}", "sha256": sha256_file(path)}
    return Binary(path.resolve(), source), found


def path_binary(product: str, environ: Mapping[str, str]) -> tuple[Binary, Identity | None]:
    """``valkey-server``/``redis-server`` found on PATH, with what it says it is."""
    name = PATH_NAMES[product]
    found_path = shutil.which(name, path=environ.get("PATH"))
    if not found_path:
        raise NotAvailable(f"no {name} on PATH")
    path = Path(found_path)
    found = probe_version(path)
    source = {"kind": "path", "detail": str(path), "sha256": sha256_file(path)}
    return Binary(path.resolve(), source), found
