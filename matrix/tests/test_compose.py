"""docker/docker-compose.yaml and the catalogue agree: one service per id, same image, version and port."""

from __future__ import annotations

import pytest
from emmett_valkey_matrix.sources.compose import compose_url, docker_engine, find_compose_file, up_command

yaml = pytest.importorskip("yaml")


@pytest.fixture(scope="module")
def services():
    return yaml.safe_load(find_compose_file().read_text(encoding="utf-8"))["services"]


def test_one_service_per_catalogue_id(services, catalogue):
    """The compose file has exactly the catalogue's ids as services."""
    assert sorted(services) == sorted(catalogue)


def test_images_versions_and_ports_match(services, catalogue):
    """Each service runs the catalogue's pinned image on the catalogue's distinct host port."""
    for sid, entry in catalogue.items():
        service = services[sid]
        assert service["image"] == entry.image
        assert service["image"].startswith("valkey/valkey:" if entry.product == "valkey" else "redis:")
        assert service["image"].split(":")[1].split("-")[0] == entry.image_version
        assert service["ports"] == [f"127.0.0.1:{entry.compose_port}:6379"]
    ports = [services[s]["ports"][0] for s in services]
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
