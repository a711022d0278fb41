"""docker/example-compose.yaml and docker/Dockerfile: the structure docs/example-app.md promises.

No Docker engine runs where the project is tested, so the files are read, not run: the app waits for a healthy
Valkey that persists (appendonly yes) and answers ``valkey-cli ping``; it is built from this checkout with files that
exist, runs examples/app/app.py, and is configured only by VALKEY_* variables the handler reads, pointing at the
compose service. certification/test_docs_example_app.py runs the same app without Docker.
"""

from __future__ import annotations

import json
import shlex
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from emmett_valkey import ENV_VARIABLES

yaml = pytest.importorskip("yaml")

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker" / "example-compose.yaml"


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))  # type: ignore[no-any-return]


def dockerfile(compose: dict[str, Any]) -> tuple[Path, list[tuple[str, str]]]:
    """Return the build context and the Dockerfile's instructions (continuations joined) as (INSTRUCTION, rest)."""
    build = compose["services"]["app"]["build"]
    context = (COMPOSE.parent / build["context"]).resolve()
    text = (context / build["dockerfile"]).read_text(encoding="utf-8")
    joined = text.replace("\\\n", " ")
    instructions = []
    for line in joined.splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            word, _, rest = line.strip().partition(" ")
            instructions.append((word.upper(), rest.strip()))
    return context, instructions


def test_valkey_persists_and_reports_health(compose: dict[str, Any], catalogue: Any) -> None:
    """The server is the embedded default's version, runs appendonly yes, and is healthy when it answers PING."""
    valkey = compose["services"]["valkey"]
    assert valkey["image"] == catalogue["valkey91"].image
    command = valkey["command"]
    assert command[0] == "valkey-server"
    assert command[command.index("--appendonly") + 1] == "yes"
    assert command[command.index("--maxmemory-policy") + 1].startswith("allkeys-")
    assert valkey["healthcheck"]["test"] == ["CMD", "valkey-cli", "ping"]
    assert valkey["volumes"] == ["valkey_data:/data"] and "valkey_data" in compose["volumes"]


def test_app_waits_for_a_healthy_valkey(compose: dict[str, Any]) -> None:
    assert set(compose["services"]) == {"valkey", "app"}
    assert compose["services"]["app"]["depends_on"] == {"valkey": {"condition": "service_healthy"}}


def test_app_is_configured_by_variables_the_handler_reads(compose: dict[str, Any]) -> None:
    """Only VALKEY_* variables of ENV_VARIABLES, and the URL names the valkey service on its port."""
    environment = compose["services"]["app"]["environment"]
    assert set(environment) <= set(ENV_VARIABLES), set(environment) - set(ENV_VARIABLES)
    url = urlsplit(environment["VALKEY_URL"])
    assert (url.scheme, url.hostname, url.port) == ("valkey", "valkey", 6379)
    from emmett_valkey import ValkeyCache

    ValkeyCache.from_env(environment).close()  # every value is one the handler accepts


def test_image_is_built_from_this_checkout_and_runs_the_example(compose: dict[str, Any]) -> None:
    """Every COPY source exists in the build context; the app file is the example; the command serves it."""
    context, instructions = dockerfile(compose)
    assert context == ROOT
    copies = [shlex.split(rest) for word, rest in instructions if word == "COPY"]
    sources = [s for parts in copies for s in [p for p in parts if not p.startswith("--")][:-1]]
    missing = [s for s in sources if not (context / s).exists()]
    assert not missing, f"COPY sources that are not in the build context: {missing}"
    assert ["examples/app/app.py", "./app.py"] == [p for p in copies[-1] if not p.startswith("--")]
    ignored = (ROOT / ".dockerignore").read_text(encoding="utf-8").splitlines()
    assert all(f"!{s.split('/')[0]}" in ignored or f"!{s.split('/')[0]}/" in ignored for s in sources), ignored
    command = json.loads(next(rest for word, rest in instructions if word == "CMD"))
    assert command[:5] == ["emmett", "-a", "app.py", "serve", "--host"] and "--port" in command
    port = command[command.index("--port") + 1]
    assert compose["services"]["app"]["ports"] == [f"127.0.0.1:{port}:{port}"]
    assert ("EXPOSE", port) in instructions


def test_the_page_quotes_the_app() -> None:
    """Every line of docs/example-app.md's Python excerpt is a line of examples/app/app.py."""
    page = (ROOT / "docs" / "example-app.md").read_text(encoding="utf-8")
    excerpt = page.split("```python\n", 1)[1].split("```", 1)[0]
    app = {line.strip() for line in (ROOT / "examples" / "app" / "app.py").read_text(encoding="utf-8").splitlines()}
    assert [line for line in excerpt.splitlines() if line.strip() and line.strip() not in app] == []
