"""``python -m hepinfer.cli``: the ``hepinfer`` command."""

import sys

from hepinfer.cli import main

sys.exit(main())
