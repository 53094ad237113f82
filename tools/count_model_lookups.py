"""How many times one `hepinfer run` looks a model up by name, and where: the registry's lookups
(``SPECS[name]``) counted during an in-process run of the main job on the demo sample, local
inference, the iterative executor.

    .venv/bin/python tools/count_model_lookups.py
"""

import collections
import sys
import tempfile

from hepinfer.models.registry import Registry

lookups: collections.Counter = collections.Counter()
callers: collections.Counter = collections.Counter()
_getitem = Registry.__getitem__


def counted(self, name):
    lookups[name] += 1
    frame = sys._getframe(1)
    while frame.f_code.co_name in ("get_spec", "resolve"):  # the caller of the lookup
        frame = frame.f_back
    callers[f"{frame.f_code.co_filename.rpartition('hepinfer/')[2]}:{frame.f_code.co_name}"] += 1
    return _getitem(self, name)


Registry.__getitem__ = counted

from hepinfer.cli import main  # noqa: E402  (after the counter is in place)

with tempfile.TemporaryDirectory() as out:
    rc = main(["run", "--mode", "local", "--executor", "iterative", "--output", f"{out}/summary.json"])
print(f"exit {rc}; lookups by name: {sum(lookups.values())} ({dict(lookups)})")
for caller, n in callers.most_common():
    print(f"{n:5d}  {caller}")
