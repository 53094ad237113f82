"""``python -m hepinfer.cli``: the ``hepinfer`` command."""

import sys

from . import main

sys.exit(main())
