"""The embedded server's guard: ``python -I guard.py PARENT_PID -- tritonserver ...``.

A small single-threaded process between the analysis process and tritonserver, so that the server
never outlives the Python process that started it:

* the guard starts tritonserver with ``PR_SET_PDEATHSIG = SIGKILL``: if the guard dies, however it
  dies (``kill -9`` included), the kernel kills tritonserver.  This is safe here and not in the
  analysis process, because the guard has one thread (the death signal follows the *thread* that
  forked, and the notebook panel starts servers from short-lived threads);
* the guard checks twice a second that its parent is still ``PARENT_PID``; when the analysis
  process is gone (killed, or a kernel that died without running ``atexit``), it stops tritonserver
  (SIGTERM, SIGKILL after 10 s) and exits;
* SIGTERM / SIGINT sent to the guard are passed on to tritonserver, and the guard exits with
  tritonserver's exit status.

It uses the standard library only and runs with ``-I``: it starts in milliseconds.
"""

import ctypes
import os
import signal
import subprocess
import sys

PR_SET_PDEATHSIG = 1


def _die_with_guard() -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


def main(argv: list[str]) -> int:
    parent, sep, cmd = int(argv[0]), argv[1], argv[2:]
    if sep != "--" or not cmd:
        print("usage: guard.py PARENT_PID -- COMMAND...", file=sys.stderr)
        return 2
    if os.getppid() != parent:  # the parent died before we got here
        return 1
    child = subprocess.Popen(cmd, preexec_fn=_die_with_guard)

    def forward(signum, _frame):
        try:
            child.send_signal(signum)
        except ProcessLookupError:
            pass

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    while True:
        try:
            return child.wait(timeout=0.5)
        except subprocess.TimeoutExpired:
            pass
        if os.getppid() != parent:  # orphaned: the analysis process is gone
            child.terminate()
            try:
                return child.wait(timeout=10)
            except subprocess.TimeoutExpired:
                child.kill()
                return child.wait()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
