"""PEP 517 backend of the root developer meta-project ``emmett-valkey-dev`` (the repository root's pyproject.toml).

The repository holds two distributions, each with its own ``pyproject.toml``: ``handler/`` (``emmett-valkey``) and
``matrix/`` (``emmett-valkey-matrix``). The root is neither. Building it builds both wheels the way a release does
(an sdist of each, then a wheel from that sdist, with setuptools) into ``build/meta/``, and then a wheel of its own
that holds no code: its requirements are those two wheels by file URL, its ``certify`` extra is the matrix's own
``certify`` extra (the one list, in ``matrix/pyproject.toml``), ``dev`` adds the tools of
``[tool.emmett-valkey-dev]``. So ``pip install .`` and tox's ``package = wheel`` install the built distributions.

The third-party requirements of both distributions are repeated in the root's metadata: tox compares a package's
requirements between runs, so a requirement added to either pyproject.toml reaches existing tox envs.

The editable wheel (``pip install -e '.[dev]'``) is the same plus one ``.pth`` line that puts ``handler/`` and
``matrix/`` first on ``sys.path``: the sources are what runs, while the installed wheels keep their metadata
(versions, the ``emmett-valkey-matrix`` console script).

There is no sdist of the root: it would name files of this checkout by absolute path.
"""

from __future__ import annotations

import base64
import hashlib
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from pathlib import Path
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - the root's build requirements bring tomli there
    import tomli as tomllib

ROOT = Path(__file__).resolve().parent.parent
PARTS = ("handler", "matrix")  # the distributions' directories, the handler first (the matrix requires it)
OUT = ROOT / "build" / "meta"  # the two built wheels; the root's requirements point here
_NAME = re.compile(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)")

_SDIST = "import sys; from setuptools import build_meta as b; b.build_sdist(sys.argv[1])"
_WHEEL = "import sys; from setuptools import build_meta as b; b.build_wheel(sys.argv[1])"


def _pyproject(directory: Path) -> dict[str, Any]:
    data: dict[str, Any] = tomllib.loads((directory / "pyproject.toml").read_text(encoding="utf-8"))
    return data


def _normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _req_name(requirement: str) -> str:
    match = _NAME.match(requirement)
    if not match:
        raise ValueError(f"not a requirement: {requirement!r}")
    return _normalise(match.group(1))


def _under_extra(requirement: str, extra: str | None) -> str:
    """Return ``requirement`` with its marker, and ``extra == '<extra>'`` when given."""
    spec, _, marker = requirement.partition(";")
    parts = [f"({marker.strip()})"] if marker.strip() else []
    if extra:
        parts.append(f'extra == "{extra}"')
    return spec.strip() + (f" ; {' and '.join(parts)}" if parts else "")  # the space ends a URL


def _run(code: str, out: Path, cwd: Path) -> None:
    # setuptools' own output goes to stderr: frontends show it on failure or when verbose
    subprocess.run([sys.executable, "-c", code, str(out)], cwd=cwd, check=True, stdout=sys.stderr)


def build_parts() -> dict[str, Path]:
    """Build each distribution's sdist, then its wheel from that sdist, into ``build/meta/``; return name -> wheel."""
    if OUT.exists():
        shutil.rmtree(OUT)
    OUT.mkdir(parents=True)
    wheels: dict[str, Path] = {}
    for part in PARTS:
        name = _normalise(_pyproject(ROOT / part)["project"]["name"])
        with tempfile.TemporaryDirectory(prefix=f"emmett-valkey-meta-{part}-") as tmp:
            _run(_SDIST, Path(tmp), ROOT / part)
            (sdist,) = Path(tmp).glob("*.tar.gz")
            with tarfile.open(sdist) as tar:
                if hasattr(tarfile, "data_filter"):
                    tar.extractall(Path(tmp) / "src", filter="data")
                else:  # pragma: no cover - Pythons without extraction filters
                    tar.extractall(Path(tmp) / "src")  # noqa: S202 - our own sdist, just built
            (unpacked,) = (Path(tmp) / "src").iterdir()
            before = set(OUT.glob("*.whl"))
            _run(_WHEEL, OUT, unpacked)
        (wheel,) = set(OUT.glob("*.whl")) - before
        wheels[name] = wheel
    return wheels


def requirements(wheels: dict[str, Path]) -> tuple[list[str], dict[str, list[str]]]:
    """Return the root's requirements and extras: the built wheels by file URL, and every third-party requirement."""
    handler, matrix = (_pyproject(ROOT / part)["project"] for part in PARTS)
    ours = {_normalise(handler["name"]), _normalise(matrix["name"])}
    handler_url = wheels[_normalise(handler["name"])].as_uri()
    matrix_url = wheels[_normalise(matrix["name"])].as_uri()
    base = [f"{handler['name']} @ {handler_url}", f"{matrix['name']} @ {matrix_url}"]
    base += [_under_extra(r, None) for r in [*handler["dependencies"], *matrix["dependencies"]]
             if _req_name(r) not in ours]
    certify = matrix["optional-dependencies"]["certify"]
    dev = _pyproject(ROOT)["tool"]["emmett-valkey-dev"]["dev"]
    extras: dict[str, list[str]] = {}
    for extra, tools in (("certify", []), ("dev", dev)):
        extras[extra] = [_under_extra(f"{matrix['name']}[certify] @ {matrix_url}", extra)]
        extras[extra] += [_under_extra(r, extra) for r in [*certify, *tools]]
    return base, extras


def _metadata(base: list[str], extras: dict[str, list[str]]) -> str:
    project = _pyproject(ROOT)["project"]
    lines = ["Metadata-Version: 2.1", f"Name: {project['name']}", f"Version: {project['version']}",
             f"Summary: {project['description']}", f"Requires-Python: {project['requires-python']}"]
    lines += [f"Requires-Dist: {r}" for r in base]
    for extra, reqs in extras.items():
        lines.append(f"Provides-Extra: {extra}")
        lines += [f"Requires-Dist: {r}" for r in reqs]
    return "\n".join(lines) + "\n"


def _record_line(path: str, data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"{path},sha256={digest},{len(data)}"


def _write_wheel(directory: str, files: dict[str, str]) -> str:
    project = _pyproject(ROOT)["project"]
    stem = f"{project['name'].replace('-', '_')}-{project['version']}"
    info = f"{stem}.dist-info"
    files = {**files, f"{info}/WHEEL": "Wheel-Version: 1.0\nGenerator: tools/meta_backend.py\n"
                                       "Root-Is-Purelib: true\nTag: py3-none-any\n"}
    name = f"{stem}-py3-none-any.whl"
    record = []
    with zipfile.ZipFile(Path(directory) / name, "w", zipfile.ZIP_DEFLATED) as wheel:
        for path, text in files.items():
            data = text.encode("utf-8")
            wheel.writestr(path, data)
            record.append(_record_line(path, data))
        record.append(f"{info}/RECORD,,")
        wheel.writestr(f"{info}/RECORD", "\n".join(record) + "\n")
    return name


def _build(wheel_directory: str, editable: bool) -> str:
    project = _pyproject(ROOT)["project"]
    info = f"{project['name'].replace('-', '_')}-{project['version']}.dist-info"
    base, extras = requirements(build_parts())
    files = {f"{info}/METADATA": _metadata(base, extras)}
    if editable:
        paths = ", ".join(repr(str(ROOT / part)) for part in PARTS)
        files["emmett_valkey_dev.pth"] = (f"import sys; sys.path[:0] = [p for p in ({paths},) "
                                          "if p not in sys.path]\n")
    return _write_wheel(wheel_directory, files)


def get_requires_for_build_wheel(config_settings: dict[str, Any] | None = None) -> list[str]:
    """Nothing beyond the root's build requirements (setuptools builds the two distributions)."""
    return []


get_requires_for_build_editable = get_requires_for_build_wheel
get_requires_for_build_sdist = get_requires_for_build_wheel


def build_wheel(wheel_directory: str, config_settings: dict[str, Any] | None = None,
                metadata_directory: str | None = None) -> str:
    """Build both distributions' wheels into build/meta/ and the root's wheel, which requires them."""
    return _build(wheel_directory, editable=False)


def build_editable(wheel_directory: str, config_settings: dict[str, Any] | None = None,
                   metadata_directory: str | None = None) -> str:
    """As :func:`build_wheel`, plus the ``.pth`` line that runs ``handler/`` and ``matrix/`` from the checkout."""
    return _build(wheel_directory, editable=True)


def build_sdist(sdist_directory: str, config_settings: dict[str, Any] | None = None) -> str:
    """Refuse: the root is a developer meta-project; the distributions are built from handler/ and matrix/."""
    raise RuntimeError("the repository root (emmett-valkey-dev) has no sdist: build the distributions instead, "
                       "python -m build handler; python -m build matrix (or tox -e dist)")

