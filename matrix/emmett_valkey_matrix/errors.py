"""The provisioning error every floor below it raises: no way to obtain a server here.

It lives below both the sources and the binary cache, which raise it, so that neither imports the other for it.
"""

from __future__ import annotations


class NotAvailable(RuntimeError):
    """No source gives this server on this machine; the message says why and how to provide one."""
