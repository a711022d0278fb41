"""The load generator: ``wrk`` from Debian's packages, unpacked (not installed) like the matrix's Debian servers.

:func:`obtain` fetches ``wrk`` and the LuaJIT library it links into the binary cache with the matrix's own Debian
source (``emmett_valkey_matrix.sources.debian``: a private apt setup, ``apt-get download``, ``dpkg-deb -x``, an
``ldd`` check), once; :func:`run` drives one URL and :func:`parse` reads ``wrk --latency``'s report into numbers.
"""

from __future__ import annotations

import re
import subprocess
import sys
from dataclasses import asdict, dataclass
from typing import Any

from emmett_valkey_matrix.sources.base import Binary
from emmett_valkey_matrix.sources.debian import obtain_packages

SUITE = "bookworm"
PACKAGES = ("wrk",)
LIBS = ("libluajit-5.1-2",)  # wrk links libluajit-5.1.so.2; libssl3 and libc come from the host
BINARY = "usr/bin/wrk"
DOWNLOAD_MB = 10  # mostly the suite's package lists; the two packages are 0.3 MB
_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3}  # wrk's time units, to milliseconds


def obtain() -> Binary:
    """Return the runnable ``wrk`` (with ``LD_LIBRARY_PATH`` set for its library), fetching it on first use."""
    fetched = obtain_packages(SUITE, PACKAGES, LIBS, BINARY, download_mb=DOWNLOAD_MB, fetch=True,
                              progress=lambda line: print(f"appbench: {line}", file=sys.stderr, flush=True))
    return fetched.runnable()


@dataclass(frozen=True)
class Load:
    """What one ``wrk --latency`` run measured."""

    requests_per_s: float
    requests: int
    p50_ms: float
    p99_ms: float
    socket_errors: int
    non_2xx: int

    def as_json(self) -> dict[str, Any]:
        """Return the figures as the app.json route entry holds them."""
        return asdict(self)


def _ms(value: str, unit: str) -> float:
    return float(value) * _UNITS[unit]


def parse(text: str) -> Load:
    """Read ``wrk --latency``'s report; a report without its throughput or percentiles is an error naming it."""
    rate = re.search(r"^Requests/sec:\s+([\d.]+)", text, re.MULTILINE)
    total = re.search(r"^\s*(\d+) requests in ", text, re.MULTILINE)
    pct = {p: re.search(rf"^\s+{p}%\s+([\d.]+)(us|ms|s|m)\s*$", text, re.MULTILINE) for p in ("50", "99")}
    if rate is None or total is None or pct["50"] is None or pct["99"] is None:
        raise ValueError(f"not a wrk --latency report:\n{text}")
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    return Load(
        requests_per_s=float(rate.group(1)),
        requests=int(total.group(1)),
        p50_ms=_ms(*pct["50"].groups()),
        p99_ms=_ms(*pct["99"].groups()),
        socket_errors=sum(int(g) for g in errors.groups()) if errors else 0,
        non_2xx=int(non_2xx.group(1)) if non_2xx else 0,
    )


def run(wrk: Binary, url: str, *, seconds: int, connections: int, threads: int) -> Load:
    """Drive ``url`` for ``seconds`` and return what wrk measured (bounded: killed 30 s after its duration)."""
    argv = [str(wrk.path), f"-t{threads}", f"-c{connections}", f"-d{seconds}s", "--latency", url]
    done = subprocess.run(argv, env=wrk.environ(), capture_output=True, text=True, timeout=seconds + 30,
                          check=False)
    if done.returncode != 0:
        raise RuntimeError(f"wrk exited with {done.returncode}: {done.stderr or done.stdout}")
    return parse(done.stdout)
