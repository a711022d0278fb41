"""The run id: which catalogued server a run certifies, and on which topology; parsed and printed here only.

A run id is a catalogue id and a :class:`Topology`: ``valkey91`` runs one server of that id, ``valkey91-cluster`` a
local cluster of the same build. The id names the tox env, the ``--server`` of the suites, the result file
(``<run id>.json``), the report's column and the user URL (``CERTIFY_VALKEY91_CLUSTER_URL``, from :attr:`env_key`).
A new topology is one more :class:`Topology` member: its value is both the id's suffix and what a provenance records.

>>> RunId.parse("valkey91-cluster")
RunId(base='valkey91', topology=<Topology.CLUSTER: 'cluster'>)
>>> str(RunId("valkey91", Topology.CLUSTER)), str(RunId("valkey91"))
('valkey91-cluster', 'valkey91')

Plain data: importing it costs nothing.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from enum import Enum

_BASE = re.compile(r"[a-z][a-z0-9_]*")  # a catalogue id, as the result schema's server_id pattern has it


class Topology(str, Enum):
    """How a catalogued server runs; the value is the id suffix (none for one server) and the provenance's word."""

    STANDALONE = "standalone"
    CLUSTER = "cluster"

    def __str__(self) -> str:
        return self.value

    def __format__(self, spec: str) -> str:
        return format(self.value, spec)

    @property
    def suffix(self) -> str:
        """What the run id adds to the catalogue id: ``""`` for one server, ``"-cluster"`` for a cluster."""
        return "" if self is Topology.STANDALONE else f"-{self.value}"

    @classmethod
    def named(cls, name: str) -> Topology:
        """Return the topology called ``name``; a clear :class:`ValueError` naming the valid ones otherwise."""
        try:
            return cls(name)
        except ValueError:
            raise ValueError(f"unknown topology {name!r}; expected one of {', '.join(TOPOLOGIES)}") from None


TOPOLOGIES: tuple[Topology, ...] = tuple(Topology)


class UnknownRunId(ValueError, KeyError):
    """An id that names no catalogued server or no topology (a :class:`KeyError` too, as ``resolve`` raised)."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


@dataclass(frozen=True)
class RunId:
    """A catalogue id and the topology it runs on; ``str()`` gives the id back (``valkey91-cluster``)."""

    base: str
    topology: Topology = Topology.STANDALONE

    def __str__(self) -> str:
        return f"{self.base}{self.topology.suffix}"

    @property
    def standalone(self) -> bool:
        """Whether this is one server of its id."""
        return self.topology is Topology.STANDALONE

    @property
    def env_key(self) -> str:
        """The id as environment names take it: ``CERTIFY_VALKEY91_URL``, ``CERTIFY_VALKEY91_CLUSTER_URL``."""
        return self.base if self.standalone else f"{self.base}_{self.topology.value}"

    @classmethod
    def read(cls, text: str) -> RunId:
        """Read any text as a run id, never failing: a known topology's suffix splits off, anything else is one server.

        ``valkey91-cluster`` -> (``valkey91``, cluster); ``valkey91-ring`` or ``-cluster`` -> themselves, standalone;
        ``str(RunId.read(x)) == x`` always. For ids from files, whose base the caller checks against the catalogue.
        """
        for topology in TOPOLOGIES:
            if topology.suffix and text.endswith(topology.suffix) and len(text) > len(topology.suffix):
                return cls(text[: -len(topology.suffix)], topology)
        return cls(text)

    @classmethod
    def parse(cls, text: str, known: Iterable[str] | None = None) -> RunId:
        """Parse a run id strictly: a catalogue id (one of ``known`` when given), optionally ``-<topology>``.

        Raises :class:`UnknownRunId` (a :class:`ValueError`) naming the valid topologies, or the known ids.
        """
        base, dash, rest = text.partition("-")
        ids = list(known) if known is not None else None
        others = [t for t in TOPOLOGIES if t.suffix]
        known_text = f"known: {', '.join(ids)}" if ids else "a catalogue id ([a-z][a-z0-9_]*)"
        valid = f"{known_text} (each also as " + ", ".join(f"<id>{t.suffix}, a {t} of it" for t in others) + ")"
        if not _BASE.fullmatch(base) or (ids is not None and base not in ids):
            raise UnknownRunId(f"unknown server id {text!r}; {valid}")
        if not dash:
            return cls(base)
        if rest not in {t.value for t in others}:
            raise UnknownRunId(f"unknown server id {text!r}: no topology {rest!r} (topologies: "
                               f"{', '.join(TOPOLOGIES)}); {valid}")
        return cls(base, Topology(rest))
