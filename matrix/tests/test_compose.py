"""docker/docker-compose.yaml and the catalogue agree: one service per id, same image, version and port."""

from __future__ import annotations

import pytest
from emmett_valkey_matrix.sources.compose import compose_url, docker_engine, find_compose_file, up_command

yaml = pytest.importorskip("yaml")


@pytest.fixture(scope="module")
def services():
    return yaml.safe_load(find_compose_file().read_text(encoding="utf-8"))["services"]


def _single(services):
    return {sid: s for sid, s in services.items() if "-cluster" not in sid}


def test_one_service_per_catalogue_id(services, catalogue):
    """The compose file has exactly the catalogue's ids as single-server services (and a cluster, below)."""
    assert sorted(_single(services)) == sorted(catalogue)


def test_images_versions_and_ports_match(services, catalogue):
    """Each service runs the catalogue's pinned image on the catalogue's distinct host port."""
    for sid, entry in catalogue.items():
        service = services[sid]
        assert service["image"] == entry.image
        assert service["image"].startswith("valkey/valkey:" if entry.product == "valkey" else "redis:")
        assert service["image"].split(":")[1].split("-")[0] == entry.image_version
        assert service["ports"] == [f"127.0.0.1:{entry.compose_port}:6379"]
    ports = [service["ports"][0] for service in _single(services).values()]
    assert len(set(ports)) == len(ports)


def test_services_persist_and_report_health(services, catalogue):
    """Appendonly yes (a cache that restarts warm), and a ping healthcheck with the product's cli."""
    for sid, entry in catalogue.items():
        service = services[sid]
        assert service["command"] == [f"{entry.product}-server", "--appendonly", "yes"]
        assert service["healthcheck"]["test"] == ["CMD", f"{entry.product}-cli", "ping"]
        assert service["volumes"] == [f"{sid}_data:/data"]


def test_compose_hints_use_the_catalogue_port(catalogue):
    """The URL and command we print for a service match the file."""
    assert compose_url(catalogue["valkey72"]) == "valkey://localhost:16072/0"
    assert up_command("valkey72") == "docker compose -f docker/docker-compose.yaml up -d --wait valkey72"


def test_docker_engine_reports_a_reason_or_none():
    """docker_engine() answers None (engine up) or a reason; here the client may exist without an engine."""
    reason = docker_engine()
    assert reason is None or ("docker" in reason)


def test_a_cluster_of_the_newest_valkey(services, catalogue):
    """The newest Valkey of the catalogue also runs as a cluster: 6 nodes of its image, formed by one service."""
    valkeys = [e for e in catalogue.values() if e.product == "valkey"]
    newest = max(valkeys, key=lambda e: tuple(map(int, e.line.split("."))))
    nodes = {sid: s for sid, s in services.items() if sid.startswith(f"{newest.id}-cluster-node")}
    assert len(nodes) == 6
    ports = []
    for node in nodes.values():
        assert node["image"] == newest.image and node["network_mode"] == "host"
        command = node["command"]
        assert command[0] == "valkey-server" and command[command.index("--cluster-enabled") + 1] == "yes"
        port = command[command.index("--port") + 1]
        assert node["healthcheck"]["test"] == ["CMD", "valkey-cli", "-p", port, "ping"]
        ports.append(int(port))
    assert len(set(ports)) == 6
    former = services[f"{newest.id}-cluster"]
    assert former["image"] == newest.image and set(former["depends_on"]) == set(nodes)
    script = former["command"][-1]
    assert "--cluster-replicas 1" in script and all(f"127.0.0.1:{p}" in script for p in ports)
    assert "cluster_state:ok" in former["healthcheck"]["test"][-1]
    seed = f"CERTIFY_{newest.id.upper()}_CLUSTER_URL=valkey://127.0.0.1:{min(ports)}"
    assert seed in find_compose_file().read_text(encoding="utf-8")
