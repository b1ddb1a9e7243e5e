"""Where numba keeps its compiled-function cache, so a read-only install still runs.

numba's `cache=True` looks for a writable folder beside the source (`__pycache__`) or in the user's cache
(~/.cache/numba); with neither (a read-only site-packages and no writable HOME) every import fails with
"cannot cache function ...: no locator available".  `CACHE` is what the kernels pass as `cache=`: before
any kernel is compiled this points numba at a private temporary folder when the usual places are not
writable, and turns caching off (one note on stderr) when no folder is.
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

import numba
from numba.misc.appdirs import AppDirs


def _writable(folder: Path) -> bool:
    """numba's own test (`_CacheLocator.ensure_cache_path`): the folder can be made and written to."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        tempfile.TemporaryFile(dir=folder).close()
        return True
    except OSError:
        return False


def _choose_cache() -> bool:
    """True when numba can cache (pointing it at a temporary folder if it must); False to compile uncached."""
    if numba.config.CACHE_DIR:  # type: ignore[attr-defined]  # NUMBA_CACHE_DIR given: the user's choice
        return True
    if _writable(Path(__file__).resolve().parent / "__pycache__"):
        return True
    if _writable(Path(AppDirs(appname="numba", appauthor=False).user_cache_dir)):
        return True
    try:
        fallback = Path(tempfile.gettempdir()) / f"rlmap-numba-cache-{os.getuid() if hasattr(os, 'getuid') else 0}"
    except OSError:  # no writable temporary folder either
        fallback = None
    if fallback is not None and _writable(fallback):
        os.environ["NUMBA_CACHE_DIR"] = str(fallback)  # the compiler reloads numba's config from the environment
        numba.config.CACHE_DIR = str(fallback)  # type: ignore[attr-defined]
        return True
    print(
        "note: no writable folder for numba's cache (set NUMBA_CACHE_DIR); compiling the cost model uncached",
        file=sys.stderr,
    )
    return False


CACHE: bool = _choose_cache()
"""Pass as `numba.njit(cache=CACHE)`."""
