"""Stopping a process this run started, by its pid: one rule for the servers' helpers and the served apps."""

from __future__ import annotations

import os
import signal
import subprocess


def stop_group(proc: subprocess.Popen[bytes] | subprocess.Popen[str] | None, deadline: float) -> None:
    """Stop *proc* (started with ``start_new_session=True``): TERM, wait *deadline* s, then KILL its process group.

    The group is the session the process leads (granian and the workers it spawned); nothing is found by name.
    """
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(deadline)
    except subprocess.TimeoutExpired:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait(deadline)
