"""Reading across servers: tests whose outcome differs, listed deviations, and every failure to rerun."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from typing import Any

from .model import HANDLERS, SUITES, Deviation, Difference, Failure, ServerOutcome
from .verdict import unexplained

Doc = Mapping[str, Any]


def test_key(doc: Doc, test: Mapping[str, Any]) -> str:
    """A test's node id with this server's parameter (its id, ``valkey91``) replaced by ``{server}``.

    The same key on two servers means the same test body, parameters and handler. A label of the form
    ``valkey-9.1.2`` is replaced too, for result files whose suites name servers that way.
    """
    nodeid = str(test["nodeid"])
    head, bracket, params = nodeid.partition("[")
    server = doc.get("server") or {}
    labels = {str(doc.get("server_id")), f"{server.get('product')}-{server.get('version')}"}
    if bracket:
        parts = params[:-1].split("-") if params.endswith("]") else [params]
        parts = ["{server}" if part in labels else part for part in parts]
        params = "-".join(parts) + "]"
        nodeid = head + bracket + params
    for label in labels:
        nodeid = nodeid.replace(label, "{server}")
    return nodeid


def _order(handler: str, suite: str, key: str) -> tuple[int, int, str]:
    return HANDLERS.index(handler), SUITES.index(suite), key


def differences(docs: Sequence[tuple[str, Doc]]) -> tuple[Difference, ...]:
    """List tests present on several completed servers whose outcomes there are not all the same."""
    seen: dict[tuple[str, str, str], dict[str, str]] = defaultdict(dict)
    for server_id, doc in docs:
        for test in doc["tests"]:
            seen[(test["handler"], test["suite"], test_key(doc, test))][server_id] = test["outcome"]
    found = []
    for (handler, suite, key), outcomes in seen.items():
        if len(outcomes) > 1 and len(set(outcomes.values())) > 1:
            cells = tuple(ServerOutcome(sid, outcomes.get(sid)) for sid, _ in docs)
            found.append(Difference(key, suite, handler, cells))
    return tuple(sorted(found, key=lambda d: _order(d.handler, d.suite, d.test)))


def deviations(docs: Sequence[tuple[str, Doc]]) -> tuple[Deviation, ...]:
    """List every deviation a test names, its explanation and the servers where it did and did not occur."""
    tests: dict[tuple[str, str], set[str]] = defaultdict(set)
    occurred: dict[tuple[str, str], set[str]] = defaultdict(set)
    absent: dict[tuple[str, str], set[str]] = defaultdict(set)
    explained: dict[str, str] = {}
    for server_id, doc in docs:
        for dev_id, text in sorted((doc.get("deviations") or {}).items()):
            explained.setdefault(dev_id, text)
        for test in doc["tests"]:
            if not test.get("deviation"):
                continue
            key = (test["handler"], test["deviation"])
            tests[key].add(test_key(doc, test))
            if test["outcome"] == "xfailed":
                occurred[key].add(server_id)
            elif test["outcome"] in ("xpassed", "passed"):
                absent[key].add(server_id)
    order = [sid for sid, _ in docs]
    return tuple(
        Deviation(
            id=dev_id,
            handler=handler,
            explanation=explained.get(dev_id),
            tests=tuple(sorted(tests[(handler, dev_id)])),
            occurred_on=tuple(s for s in order if s in occurred[(handler, dev_id)]),
            not_occurred_on=tuple(s for s in order if s in absent[(handler, dev_id)]),
        )
        for handler, dev_id in sorted(tests, key=lambda k: (HANDLERS.index(k[0]), k[1]))
    )


def failures(docs: Sequence[tuple[str, Doc]]) -> tuple[Failure, ...]:
    """List tests that failed or errored, and expected failures with no explained deviation, per server."""
    found: list[Failure] = []
    for server_id, doc in docs:
        explanations: Mapping[str, str] = doc.get("deviations") or {}
        mine = [t for t in doc["tests"] if t["outcome"] in ("failed", "error") or unexplained(t, explanations)]
        for test in sorted(mine, key=lambda t: _order(t["handler"], t["suite"], t["nodeid"])):
            found.append(
                Failure(
                    server_id=server_id,
                    suite=test["suite"],
                    handler=test["handler"],
                    nodeid=test["nodeid"],
                    outcome=test["outcome"],
                    message=test.get("message"),
                    rerun=test["rerun"],
                    deviation=test.get("deviation"),
                )
            )
    return tuple(found)
