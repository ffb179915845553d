"""Every artifact is written atomically: readers see the old file or the new one, never a part."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

TMP_SUFFIX = ".tmp"  # a file being written; a database's clean-up deletes leftovers by this name


@contextlib.contextmanager
def atomic_write(path: str | Path, extension: str = "") -> Iterator[Path]:
    """Yield a temporary path beside `path` to write; once written it is synced and moved into place.

    `extension` is added after `.tmp` for writers that pick a format by it (`.npy`, `.png`). On an
    error or an interruption the temporary file is deleted and `path` is left as it was.
    """
    path = Path(path)
    tmp = path.with_name(path.name + TMP_SUFFIX + extension)
    try:
        yield tmp
        fd = os.open(tmp, os.O_RDONLY)
        try:
            os.fsync(fd)  # the data is on disk before the name points at it
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
