"""The application as granian serves it: ``granian --interface rsgi certification.app.served:app``.

Its cache handler comes from the ``CERT_*`` environment variables (see ``certification.app.handler_from_env``).
"""

from __future__ import annotations

from certification.app import create_app

app = create_app()
