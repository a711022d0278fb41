"""``emmett-valkey-matrix``: list, fetch, resolvable, check.

Exit codes: 0 success; 1 some id failed (``fetch``, ``check``); 2 usage errors (argparse), or a command that needs
the ``certify`` extra (``report``) run without it.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .cache import megabytes, shown_root
from .catalogue import Entry, load_catalogue
from .executor import NotSupported, StartError
from .identify import IntegrityError
from .provision import pending_downloads, resolve
from .sources.base import NotAvailable

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
        with tempfile.TemporaryDirectory(prefix=f"emmett-valkey-{args.id}-") as workdir:
            server = resolved.start(workdir=Path(workdir))
            try:
                print(json.dumps(server.provenance, indent=2))
            finally:
                server.stop()
    except _FAILURES as exc:
        print(f"{args.id}: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
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
                  "pip install 'emmett-valkey[certify]'", file=sys.stderr)
            return 2
        delegated: int = module.main(argv[1:])
        return delegated
    args = build_parser().parse_args(argv)
    code: int = args.func(args)
    return code
