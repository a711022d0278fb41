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


def probe_version(path: Path, *, env: Mapping[str, str] | None = None, argv0: str | None = None,
                  what: str | None = None) -> Identity | None:
    """Run ``<binary> --version`` and parse it: None for a form not known (INFO decides once it runs).

    IntegrityError if it is not a Valkey/Redis server (it cannot run, fails, or names no server nor version).

    The error is one line that starts with ``what`` (default: the path), e.g. ``CERTIFY_VALKEY90_BIN=/bin/true: not
    a Valkey or Redis server (its --version printed "true (GNU coreutils) 9.1")``.
    """
    what = what or str(path)
    try:
        proc = subprocess.run([argv0 or str(path), "--version"], executable=str(path), env=env,
                              capture_output=True, text=True, errors="replace", timeout=20, check=False)
    except subprocess.TimeoutExpired:
        raise IntegrityError(f"{what}: not a Valkey or Redis server (its --version did not end within 20 s)") from None
    except OSError as exc:
        raise IntegrityError(f"{what}: cannot be run ({exc.strerror or exc})") from None
    if proc.returncode != 0:
        said = _first_line(proc.stderr) or _first_line(proc.stdout)
        raise IntegrityError(f"{what}: not a Valkey or Redis server (its --version exited with status "
                             f"{proc.returncode}{': ' + said if said else ''})")
    try:
        return from_version_output(proc.stdout)
    except IntegrityError:
        said = _first_line(proc.stdout)
        printed = f'printed "{said}"' if said else "printed nothing"
        raise IntegrityError(f"{what}: not a Valkey or Redis server (its --version {printed})") from None


def _first_line(text: str, limit: int = 120) -> str:
    """First non-blank line of a program's output, control characters dropped, at most ``limit`` characters."""
    line = next((ln.strip() for ln in text.splitlines() if ln.strip()), "")
    line = "".join(ch for ch in line if ch.isprintable())
    return line if len(line) <= limit else line[: limit - 1].rstrip() + "…"


def user_binary(server_id: str, environ: Mapping[str, str]) -> tuple[Binary, Identity | None] | None:
    """Return the binary named by ``CERTIFY_<ID>_BIN``, with what its ``--version`` says it is; None when unset."""
    name = env_name(server_id, "BIN")
    value = environ.get(name)
    if not value:
        return None
    path = Path(value).expanduser()
    if not path.exists():
        raise NotAvailable(f"{name}={value}: no such file")
    if not path.is_file():
        raise NotAvailable(f"{name}={value}: not a file")
    if not os.access(path, os.X_OK):
        raise NotAvailable(f"{name}={value}: not executable (no execute permission)")
    found = probe_version(path, what=f"{name}={value}")
    source = {"kind": "user-binary", "detail": f"{name}={path}", "sha256": sha256_file(path)}
    return Binary(path.resolve(), source), found


def path_binary(product: str, environ: Mapping[str, str]) -> tuple[Binary, Identity | None]:
    """``valkey-server``/``redis-server`` found on PATH, with what it says it is."""
    name = PATH_NAMES[product]
    found_path = shutil.which(name, path=environ.get("PATH"))
    if not found_path:
        raise NotAvailable(f"no {name} on PATH")
    path = Path(found_path)
    found = probe_version(path, what=f"{path} (on PATH)")
    source = {"kind": "path", "detail": str(path), "sha256": sha256_file(path)}
    return Binary(path.resolve(), source), found
