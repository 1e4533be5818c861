"""serfast.process: settings serfast applies only to the processes it owns."""

import subprocess
import sys

# an atexit handler registered before own_this_process runs after the one it registers
EXIT = """
import atexit, gc, sys
atexit.register(lambda: sys.stdout.write(f"frozen at exit: {gc.get_freeze_count() > 0}"))
import numba  # the objects whose last collection made every exit slow
if sys.argv[1] == "1":
    from serfast.process import own_this_process
    own_this_process()
"""


def frozen_at_exit(owned: bool) -> str:
    return subprocess.run([sys.executable, "-c", EXIT, "1" if owned else "0"], check=True,
                          capture_output=True, text=True).stdout


def test_an_owned_process_exits_without_the_collectors_last_walk():
    """serfast's CLI and workers freeze the collector's objects at exit (their teardown
    then skips a walk over Numba's and SciPy's objects); a program that only imports
    serfast keeps Python's usual exit."""
    assert frozen_at_exit(owned=True) == "frozen at exit: True"
    assert frozen_at_exit(owned=False) == "frozen at exit: False"
