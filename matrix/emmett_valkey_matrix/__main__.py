"""``python -m emmett_valkey_matrix``: the same CLI as ``emmett-valkey-matrix``."""

import sys

from .cli import main

sys.exit(main())
