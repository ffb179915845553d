"""The C allocator's handling of freed memory (`fpkit.heap`), in fresh processes: it is process-wide."""

import subprocess
import sys
from pathlib import Path

import pytest

from fpkit.heap import _libc_function

# Resident memory (MB) left after allocating, filling and freeing 200 MB.
KEPT_AFTER_FREE = """
import os, sys
import numpy as np
from fpkit.heap import keep_freed_memory

def resident_mb():
    return int(open("/proc/self/statm").read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 1e6

if sys.argv[1] == "keep":
    assert keep_freed_memory()
before = resident_mb()
block = np.ones(200_000_000 // 8)
del block
print(resident_mb() - before)
"""


def _kept_mb(mode: str) -> float:
    done = subprocess.run(
        [sys.executable, "-c", KEPT_AFTER_FREE, mode], capture_output=True, text=True, check=True, timeout=60
    )
    return float(done.stdout)


@pytest.mark.skipif(
    _libc_function("mallopt") is None or not Path("/proc/self/statm").exists(), reason="glibc and Linux only"
)
def test_freed_memory_is_kept_for_reuse_only_when_asked() -> None:
    assert _kept_mb("default") < 20  # handed back at once: the next allocation faults in fresh pages
    assert _kept_mb("keep") > 180  # kept resident for the next step's tensors
