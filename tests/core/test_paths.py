"""hepinfer's home folder: run folders are pruned so they do not pile up."""

from __future__ import annotations

import os

from hepinfer import paths


def test_new_run_dir_keeps_the_newest(tmp_path, monkeypatch):
    monkeypatch.setenv("HEPINFER_HOME", str(tmp_path))
    root = paths.runs_dir()
    root.mkdir(parents=True)
    for i in range(paths.KEEP_RUNS + 5):
        folder = root / f"serve-old-{i:03d}"
        folder.mkdir()
        os.utime(folder, (1_000_000 + i, 1_000_000 + i))
    live = root / "serve-old-001"  # the oldest but one: its process (this one) runs
    (live / paths.PID_FILE).write_text(str(os.getpid()))
    os.utime(live, (1_000_001, 1_000_001))
    other = root / "fleet-keep"
    other.mkdir()
    fresh = paths.new_run_dir("serve-")
    kept = sorted(p.name for p in root.glob("serve-*"))
    assert fresh.is_dir() and fresh.name in kept
    assert len(kept) == paths.KEEP_RUNS + 1 and "serve-old-001" in kept
    assert "serve-old-000" not in kept and f"serve-old-{paths.KEEP_RUNS + 4:03d}" in kept
    assert other.is_dir()  # another prefix is left alone
