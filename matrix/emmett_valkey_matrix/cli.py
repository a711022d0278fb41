"""``emmett-valkey-matrix``: list, fetch, resolvable, check, serve, workflow (and report, ratios).

Exit codes: 0 success; 1 some id failed (``fetch``, ``check``); 2 usage errors (argparse), or a command that needs
the ``certify`` extra (``report``) run without it.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .binary_cache import megabytes, shown_root
from .catalogue import Entry, load_catalogue
from .executor import LocalServer, NotSupported, StartError
from .identify import IntegrityError
from .provision import pending_downloads, resolve
from .sources.base import NotAvailable
from .sources.user import env_name

_FAILURES = (NotAvailable, IntegrityError, StartError, NotSupported)


def _status(entry: Entry, fetch: bool) -> dict[str, Any]:
    row: dict[str, Any] = {"id": entry.id, "product": entry.product, "line": entry.line,
                           "catalogued": [s.version for s in entry.sources], "status": "resolvable",
                           "source": None, "detail": None, "version": None, "reason": None}
    try:
        resolved = resolve(entry.id, fetch=fetch)
    except NotAvailable as exc:
        row.update(status="not_available", reason=str(exc))
    except IntegrityError as exc:
        row.update(status="integrity_error", reason=str(exc))
    else:
        row.update(source=resolved.kind, detail=resolved.detail, version=resolved.version)
    return row


def _ids(args: argparse.Namespace, catalogue: dict[str, Entry]) -> list[str]:
    unknown = [i for i in args.ids if i not in catalogue]
    if unknown:
        raise SystemExit(f"unknown id(s): {', '.join(unknown)}; known: {', '.join(catalogue)}")
    return list(args.ids) or list(catalogue)


def cmd_list(args: argparse.Namespace) -> int:
    """Print, per id, the source that resolves here and its version, or why none does."""
    catalogue = load_catalogue()
    rows = [_status(catalogue[i], fetch=not args.no_fetch) for i in _ids(args, catalogue)]
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    for row in rows:
        if row["status"] == "resolvable":
            print(f"{row['id']:<10} {row['version']:<9} {row['source']}: {row['detail']}")
        else:
            first = row["reason"].splitlines()[0] if args.brief else row["reason"]
            print(f"{row['id']:<10} {'-':<9} {row['status']}: {first}")
    return 0


def cmd_fetch(args: argparse.Namespace) -> int:
    """Fetch or build every given id (all by default) into the cache; non-zero naming the failures."""
    catalogue = load_catalogue()
    ids = _ids(args, catalogue)
    pending = pending_downloads(catalogue[i] for i in ids)
    if len(pending) > 1:
        known = sum(mb for _, _, mb in pending if mb)
        print(f"emmett-valkey: fetch starts {len(pending)} downloads, about {megabytes(known)} in all"
              f"{' plus a source tarball' if any(mb is None for _, _, mb in pending) else ''}, into {shown_root()} "
              "(once; later runs use the cache)", file=sys.stderr, flush=True)
    failed = []
    for sid in ids:
        row = _status(catalogue[sid], fetch=True)
        if row["status"] == "resolvable":
            print(f"{sid}: {row['version']} from {row['source']} {row['detail']}")
        else:
            failed.append(sid)
            print(f"{sid}: {row['status']}\n{row['reason']}", file=sys.stderr)
    if failed:
        print(f"not available: {' '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


def cmd_resolvable(args: argparse.Namespace) -> int:
    """Print the ids that resolve here, one per line (for CI scripts)."""
    catalogue = load_catalogue()
    for sid in catalogue:
        if _status(catalogue[sid], fetch=not args.no_fetch)["status"] == "resolvable":
            print(sid)
    return 0


def cmd_check(args: argparse.Namespace) -> int:
    """Start the server (or connect to it), print its provenance, stop it."""
    catalogue = load_catalogue()
    if args.id not in catalogue:
        raise SystemExit(f"unknown id: {args.id}; known: {', '.join(catalogue)}")
    try:
        resolved = resolve(args.id, catalogue=catalogue)
        with (tempfile.TemporaryDirectory(prefix=f"emmett-valkey-{args.id}-") as workdir,
              resolved.start(workdir=Path(workdir)) as server):
            print(json.dumps(server.provenance, indent=2))
    except _FAILURES as exc:
        print(f"{args.id}: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    return 0


DEFAULT_SERVE_ID = "valkey91"  # the embedded default: a 1.6 MB wheel


class _Stopped(Exception):
    """A stop signal (SIGINT, SIGTERM, SIGHUP) arrived while the server was being resolved or started."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def _raise_stopped(signum: int, _frame: object) -> None:
    raise _Stopped(signum)


_STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


def cmd_serve(args: argparse.Namespace) -> int:
    """Run one server for local development until SIGINT/SIGTERM/SIGHUP, then stop it and remove its data.

    stdout gets exactly one line, the URL (``valkey://127.0.0.1:PORT``), so a script can read it; the hint goes to
    stderr. Resolution is the certification's (CERTIFY_<ID>_BIN, the catalogue sources, PATH); a server someone
    else runs (CERTIFY_<ID>_URL, a compose service) is refused, since there is nothing to start or stop.
    Exit status: 0 stopped by a signal once serving; 1 no server (or it died); 128+N a signal N before it was ready.
    """
    catalogue = load_catalogue()
    if args.id not in catalogue:
        raise SystemExit(f"unknown id: {args.id}; known: {', '.join(catalogue)}")
    if args.port is not None and not 0 < args.port < 65536:
        raise SystemExit(f"--port {args.port}: not a TCP port (1-65535)")
    # Until the server is up, a stop signal raises _Stopped, so whatever was started is stopped on the way out
    # (the server runs in its own session: Ctrl-C reaches only us). Once it is up, the signals are blocked and
    # taken with sigwait, SIGCHLD included, which says the server died.
    previous = {sig: signal.signal(sig, _raise_stopped) for sig in _STOP_SIGNALS}
    watched = {*_STOP_SIGNALS, signal.SIGCHLD}
    try:
        resolved = resolve(args.id, catalogue=catalogue)
        if resolved.external:
            print(f"{args.id}: {resolved.describe()} is a server someone else runs; serve starts its own "
                  f"(unset {env_name(args.id, 'URL')})", file=sys.stderr)
            return 1
        with (tempfile.TemporaryDirectory(prefix=f"emmett-valkey-serve-{args.id}-") as workdir,
              resolved.start(workdir=Path(workdir), port=args.port) as server):
            signal.pthread_sigmask(signal.SIG_BLOCK, watched)
            url = f"valkey://{server.host}:{server.port}"
            print(url, flush=True)
            print(f"emmett-valkey: {resolved.entry.product.capitalize()} {resolved.version} "
                  f"({resolved.describe()}), pid {server.pid}, data in {workdir} (removed on exit)\n"
                  f"export VALKEY_URL={url} to use it with ValkeyCache.from_env(); Ctrl-C stops it",
                  file=sys.stderr, flush=True)
            while signal.sigwait(watched) == signal.SIGCHLD:
                if isinstance(server, LocalServer) and server.exited():
                    print(f"{args.id}: the server exited on its own; log:\n{server.log_tail()}", file=sys.stderr)
                    return 1
    except _Stopped as stopped:
        print(f"{args.id}: {stopped} before the server was ready; nothing left running", file=sys.stderr)
        return 128 + stopped.signum
    except _FAILURES as exc:
        print(f"{args.id}: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    finally:
        while signal.sigtimedwait(watched, 0) is not None:  # e.g. a second Ctrl-C while stopping: done already
            pass
        signal.pthread_sigmask(signal.SIG_UNBLOCK, watched)
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return 0


def cmd_workflow(args: argparse.Namespace) -> int:
    """Print the CI workflow generated from the catalogue and tox.ini, write it (``--write``), or check it."""
    from . import workflow

    try:
        root = workflow.find_checkout()
        if args.check:
            stale = workflow.diff(root)
            if stale:
                print(stale, end="")
                print(f"{workflow.WORKFLOW_PATH} is not what the catalogue and tox.ini give; regenerate it: "
                      "emmett-valkey-matrix workflow --write", file=sys.stderr)
                return 1
            print(f"{workflow.WORKFLOW_PATH} is current")
            return 0
        text = workflow.generate(root)
    except workflow.WorkflowError as exc:
        print(f"emmett-valkey-matrix workflow: {exc}", file=sys.stderr)
        return 1
    if args.write:
        path = root / workflow.WORKFLOW_PATH
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        print(f"wrote {path}")
    else:
        print(text, end="")
    return 0


def build_parser() -> argparse.ArgumentParser:
    """Return the argument parser (exposed for tests and docs)."""
    parser = argparse.ArgumentParser(prog="emmett-valkey-matrix",
                                     description="Provision the Valkey/Redis servers of the certification matrix.")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("list", help="per id: the source that resolves here and its version, or why not")
    p.add_argument("ids", nargs="*", metavar="ID")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument("--no-fetch", action="store_true", help="consult the cache only, download nothing")
    p.add_argument("--brief", action="store_true", help="first line of each reason only")
    p.set_defaults(func=cmd_list)
    p = sub.add_parser("fetch", help="fetch/build servers into the cache ahead of time (all by default)")
    p.add_argument("ids", nargs="*", metavar="ID")
    p.set_defaults(func=cmd_fetch)
    p = sub.add_parser("resolvable", help="print the ids that resolve here, one per line")
    p.add_argument("--no-fetch", action="store_true", help="consult the cache only, download nothing")
    p.set_defaults(func=cmd_resolvable)
    p = sub.add_parser("check", help="start a server, print its provenance, stop it")
    p.add_argument("id", metavar="ID")
    p.set_defaults(func=cmd_check)
    p = sub.add_parser("serve", help=f"run a server for local development until Ctrl-C (default {DEFAULT_SERVE_ID})",
                       description="Start the server on a loopback port with a temporary data directory, print its "
                                   "URL on stdout, and stop it (removing the data) on Ctrl-C or SIGTERM.")
    p.add_argument("id", metavar="ID", nargs="?", default=DEFAULT_SERVE_ID)
    p.add_argument("--port", type=int, default=None, help="listen on this port (default: a free one)")
    p.set_defaults(func=cmd_serve)
    p = sub.add_parser("workflow", help="the CI workflow from the catalogue and tox.ini: print, --write or --check")
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--write", action="store_true", help="write .github/workflows/matrix.yml of the checkout")
    mode.add_argument("--check", action="store_true", help="exit 1, with a diff, when the committed file is stale")
    p.set_defaults(func=cmd_workflow)
    for name, (_module, text) in _DELEGATED.items():
        sub.add_parser(name, help=f"{text} (see: {name} --help)", add_help=False)
    return parser


#: subcommands that own their argument parsing: name -> (module, help)
_DELEGATED = {
    "report": ("emmett_valkey_matrix.report", "render reports/compatibility.{md,html,json} from reports/results"),
    "ratios": ("emmett_valkey_matrix.bench", "paired benchmark ratios and their targets from pytest-benchmark JSON"),
}


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script and of ``python -m emmett_valkey_matrix``."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in _DELEGATED:
        import importlib

        try:
            module = importlib.import_module(_DELEGATED[argv[0]][0])
        except ModuleNotFoundError as exc:  # a plain install lacks the certify extra's packages (jsonschema)
            if (exc.name or "").partition(".")[0] == __name__.partition(".")[0]:
                raise
            print(f"emmett-valkey-matrix {argv[0]} needs the certify extra (no module {exc.name!r}): "
                  "pip install 'emmett-valkey-matrix[certify]'", file=sys.stderr)
            return 2
        delegated: int = module.main(argv[1:])
        return delegated
    args = build_parser().parse_args(argv)
    code: int = args.func(args)
    return code
