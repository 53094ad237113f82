"""hepinfer's logging: every module logs to a child of the ``hepinfer`` logger.

A library prints nothing by itself: in a notebook the messages stay silent unless asked for
(``hepinfer.logs.console()``), while warnings still show.  The command line calls :func:`console`
so its progress lines appear on standard output.  Progress bars are tqdm's, apart from logging.
"""

from __future__ import annotations

import logging
import sys

LOGGER = "hepinfer"
_HANDLER_NAME = "hepinfer-console"


def get_logger(name: str = LOGGER) -> logging.Logger:
    """The logger of a hepinfer module (``get_logger(__name__)``), a child of ``hepinfer``."""
    return logging.getLogger(name if name.startswith(LOGGER) else f"{LOGGER}.{name}")


class _Console(logging.StreamHandler):
    """A stream handler that writes to ``sys.stdout`` as it is at each message (so a replaced or
    captured stdout, as in pytest or Jupyter, is followed), unless a stream was given."""

    def __init__(self, stream=None):
        super().__init__(stream if stream is not None else sys.stdout)
        self._follow_stdout = stream is None

    def emit(self, record: logging.LogRecord) -> None:
        if self._follow_stdout:
            self.stream = sys.stdout
        super().emit(record)


def console(level: int | str = logging.INFO, stream=None) -> logging.Handler:
    """Show hepinfer's messages from ``level`` up as plain lines on ``stream`` (default: the
    standard output of the moment).  Calling it again replaces the handler it added before (no
    duplicated lines)."""
    logger = logging.getLogger(LOGGER)
    for handler in list(logger.handlers):
        if handler.get_name() == _HANDLER_NAME:
            logger.removeHandler(handler)
    handler = _Console(stream)
    handler.set_name(_HANDLER_NAME)
    handler.setFormatter(logging.Formatter("%(message)s"))
    logger.addHandler(handler)
    logger.setLevel(level)
    return handler
