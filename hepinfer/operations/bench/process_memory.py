"""Resident memory of processes, through psutil (the ``serve`` extra): what a measurement reads of
the server besides the load (the embedded server: tritonserver and its python-backend stubs, below
its guard).  ``hepinfer bench load`` and ``hepinfer profile`` read it."""

from __future__ import annotations

from hepinfer.errors import ConfigError


def psutil_module():
    """The psutil module (the ``serve`` extra), or a ConfigError naming the extra."""
    try:
        import psutil
    except ImportError as err:
        raise ConfigError("reading processes' memory needs psutil: pip install 'hepinfer[serve]'") from err
    return psutil


def process_tree(root: int) -> set[int]:
    """``root`` and every process below it (``root`` alone when it has gone)."""
    psutil = psutil_module()
    try:
        return {root} | {child.pid for child in psutil.Process(root).children(recursive=True)}
    except psutil.Error:
        return {root}


def rss_bytes(pids) -> int:
    """Summed resident memory of ``pids``; a process that has gone (or may not be read) counts 0."""
    psutil = psutil_module()
    total = 0
    for pid in pids:
        try:
            total += psutil.Process(pid).memory_info().rss
        except psutil.Error:
            continue
    return total


def tree_rss_bytes(root: int, include_root: bool = False) -> int:
    """Resident memory of the processes below ``root`` (and ``root`` itself with ``include_root``)."""
    pids = process_tree(root)
    if not include_root:
        pids.discard(root)
    return rss_bytes(pids)
