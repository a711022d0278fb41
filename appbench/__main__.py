"""``python -m appbench``: the end-to-end app benchmark (``tox -e appbench``; docs/matrix.md says what it measures).

One real Valkey (the matrix's embedded default, ``valkey91``, started by the matrix's provisioning), the app of
:mod:`appbench.app` under granian with one worker, ``wrk`` from Debian's packages. Per link (loopback, then the
delaying proxy adding 1 ms of round trip), granian is started on that link, every route is checked (status 200 and
its exact body, on a miss then a hit), warmed up, then measured with ``wrk --latency``. Writes
``reports/benchmarks/app.json`` (shape in :mod:`appbench.figures`) and prints the table. Exit 1 when a route gave
socket errors, a non-2xx answer or a wrong body; a missed target is a figure, not a failure.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import uuid
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from emmett_valkey_matrix.provision import resolve
from emmett_valkey_matrix.sources.base import Binary

from . import figures, wrk
from .app import HANDLERS, KINDS, payload
from .proxy import DelayProxy
from .served import ServedApp

LINKS = (("loopback", 0.0), ("1ms", 1.0))  # name, added round trip in ms


def _check(app: ServedApp, path: str, name: str) -> bool:
    """Two GETs (a miss, then a hit): both 200 with exactly the route's payload."""
    for _ in range(2):
        status, body = app.get(path)
        if status != 200 or body != payload(name):
            print(f"appbench: {path} answered {status} {body!r}", file=sys.stderr)
            return False
    return True


def _measure_link(args: argparse.Namespace, wrk_bin: Binary, link: str, cache_port: int,
                  workdir: Path) -> list[dict[str, Any]]:
    """Check and warm up every route, then ``--rounds`` rounds over all routes in turn; medians per route.

    Interleaved rounds spread a change of the machine's load (it may be shared) over every route alike.
    """
    paths = [(name, f"/{kind}/{name}", kind) for name in HANDLERS for kind in KINDS]
    prefix = f"appbench-{uuid.uuid4().hex[:8]}-{link}:"
    loads: dict[str, list[wrk.Load]] = {path: [] for _, path, _ in paths}
    ok: dict[str, bool] = {}
    with ServedApp(cache_port, prefix, workdir / link) as app:
        for name, path, _ in paths:
            ok[path] = _check(app, path, name)
            if args.warmup:
                wrk.run(wrk_bin, app.url(path), seconds=args.warmup, connections=args.connections,
                        threads=args.threads)
        for _ in range(args.rounds):
            for _, path, _ in paths:
                loads[path].append(wrk.run(wrk_bin, app.url(path), seconds=args.seconds,
                                           connections=args.connections, threads=args.threads))
        for name, path, _ in paths:
            ok[path] = _check(app, path, name) and ok[path]
    routes = []
    for name, path, kind in paths:
        runs = loads[path]
        row = {"link": link, "handler": name, "kind": kind, "path": path,
               "requests_per_s": statistics.median(x.requests_per_s for x in runs),
               "rounds_requests_per_s": [x.requests_per_s for x in runs],
               "requests": sum(x.requests for x in runs),
               "p50_ms": statistics.median(x.p50_ms for x in runs), "p99_ms": statistics.median(x.p99_ms for x in runs),
               "socket_errors": sum(x.socket_errors for x in runs), "non_2xx": sum(x.non_2xx for x in runs),
               "body_ok": ok[path]}
        print(f"appbench: {link:<9}{path:<18}{row['requests_per_s']:>10.0f} req/s  p99 {row['p99_ms']:.2f} ms",
              file=sys.stderr, flush=True)
        routes.append(row)
    return routes


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Measure every route on every link; return the app.json document."""
    wrk_bin = wrk.obtain()
    resolved = resolve(args.server)
    load_before = os.getloadavg()
    routes: list[dict[str, Any]] = []
    links: list[dict[str, Any]] = []
    with (tempfile.TemporaryDirectory(prefix="appbench-") as tmp,
          resolved.start(workdir=Path(tmp) / "server") as server):
        workdir = Path(tmp)
        prov = server.provenance
        identity = {"id": resolved.id, "product": prov.get("product"), "version": prov.get("version"),
                    "source": resolved.describe()}
        for link, added_ms in LINKS:
            if not added_ms:
                links.append({"name": link, "added_rtt_ms": 0.0, "measured": None})
                routes += _measure_link(args, wrk_bin, link, server.port, workdir)
                continue
            with DelayProxy((server.host, server.port), added_ms / 2000) as proxy:
                measured = proxy.calibrate(added_ms / 1000)
                links.append({"name": link, "added_rtt_ms": added_ms, "measured":
                              {k: round(v, 1) for k, v in measured.items()}})
                routes += _measure_link(args, wrk_bin, link, proxy.port, workdir)
    ratio_rows = figures.ratios(routes)
    return {
        "schema": figures.SCHEMA,
        "generated_at": datetime.now(timezone.utc).replace(microsecond=0).isoformat().replace("+00:00", "Z"),
        "server": identity,
        "machine": {"cpus": os.cpu_count(), "loadavg_before": [round(x, 2) for x in load_before],
                    "loadavg_after": [round(x, 2) for x in os.getloadavg()]},
        "load": {"tool": f"wrk {wrk_bin.source.get('packages', {}).get('wrk', '')}".strip(),
                 "connections": args.connections, "threads": args.threads, "seconds": args.seconds,
                 "rounds": args.rounds,
                 "warmup_seconds": args.warmup},
        "links": links,
        "routes": routes,
        "ratios": ratio_rows,
        "targets": figures.count(ratio_rows),
    }


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark, write the JSON, print the table; 1 when a route misbehaved."""
    parser = argparse.ArgumentParser(prog="python -m appbench", description=__doc__.splitlines()[0])
    parser.add_argument("--server", default="valkey91", help="catalogue id of the server (default: valkey91)")
    parser.add_argument("--seconds", type=int, default=2, help="measured seconds per route and round")
    parser.add_argument("--rounds", type=int, default=3, help="rounds over every route (figures: medians)")
    parser.add_argument("--warmup", type=int, default=1, help="warm-up seconds per route")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, default=Path("reports/benchmarks/app.json"))
    args = parser.parse_args(argv)
    if min(args.seconds, args.rounds, args.threads) < 1 or args.warmup < 0 or args.threads > args.connections:
        parser.error("--seconds, --rounds, --connections >= 1; --warmup >= 0; 1 <= --threads <= --connections")
    doc = run(args)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")
    print(figures.table(doc))
    print(f"written: {args.out}")
    bad = figures.failures(doc["routes"])
    if bad:
        print("FAIL: " + "; ".join(bad), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
