"""hepinfer's logging: silent in a library process unless asked, plain lines from the command line."""

import io
import logging
import subprocess
import sys

from hepinfer.logs import LOGGER, console, get_logger


def test_module_loggers_are_children_of_hepinfer():
    top = logging.getLogger(LOGGER)
    for name, full in (("hepinfer.analysis.job", "hepinfer.analysis.job"), ("elsewhere", "hepinfer.elsewhere")):
        logger = get_logger(name)
        assert logger.name == full
        while logger.parent is not None and logger is not top:
            logger = logger.parent
        assert logger is top


def test_silent_by_default_and_shown_by_console():
    code = (
        "import logging, hepinfer.logs as l; l.get_logger('hepinfer.x').info('quiet'); "
        "l.console(); l.get_logger('hepinfer.x').info('shown')"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout == "shown\n" and out.stderr == ""


def test_console_replaces_its_own_handler():
    logger = logging.getLogger(LOGGER)
    before = list(logger.handlers), logger.level
    try:
        first, second = io.StringIO(), io.StringIO()
        console(stream=first)
        console(stream=second)
        get_logger("hepinfer.test").info("once")
        assert first.getvalue() == "" and second.getvalue() == "once\n"
    finally:
        logger.handlers[:] = before[0]
        logger.setLevel(before[1])


def test_the_command_line_prints_library_messages(capsys):
    from hepinfer.cli import main

    assert main(["models", "list"]) == 0  # configures the console handler, prints the models
    assert "particlenet" in capsys.readouterr().out
    handlers = [h for h in logging.getLogger(LOGGER).handlers if h.get_name() == "hepinfer-console"]
    assert len(handlers) == 1
    logging.getLogger(LOGGER).removeHandler(handlers[0])
