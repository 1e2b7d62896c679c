"""Temporary output files: the names atomic writers give them, and the
start-up sweep of those a killed writer left behind.

Kept free of heavy imports (no pyarrow): the daemon runs the sweep before its
actor system starts, and every actor process is forked from what the daemon
has imported by then.
"""

from __future__ import annotations

import logging
import os
import re
import time
from pathlib import Path

log = logging.getLogger("actorsys.temp_files")

# The temporary names atomic writers use: .tmp-<pid>-<final name>.partial
_TEMP_FILE = re.compile(r"^\.tmp-(?:(\d+)-)?.*\.partial$")
# The output trees written by the IoT handlers.
OUTPUT_TREES = ("raw", "agg", "agg_hourly")
# A temporary file younger than this may belong to a write in progress on
# another host sharing the output directory: left for the next start.
ORPHAN_MIN_AGE_S = 60.0


def temp_path_for(path: Path) -> Path:
    """Where to write ``path`` before renaming it into place: same directory
    (a rename within one file system), a name no ``*.parquet`` glob matches,
    and this process's pid (so the sweep leaves a live writer's file alone)."""
    return path.with_name(f".tmp-{os.getpid()}-{path.name}.partial")


def remove_orphaned_temp_files(output_dir: Path, *, min_age_s: float = ORPHAN_MIN_AGE_S) -> int:
    """Remove the temporary files that writers killed mid-write left under
    the output trees of ``output_dir`` (recursively); returns how many.

    Only names ``temp_path_for`` gives (``.tmp-*.partial``) are candidates,
    so a ``*.parquet`` file is never touched. A candidate is kept while it may
    still be written: when it was modified less than ``min_age_s`` ago (a
    writer on another host sharing the directory) or when the process its name
    carries is alive on this host. A file that cannot be removed is logged and
    skipped: an orphan costs disk space, not correctness, and must not keep
    the daemon from starting."""
    removed = 0
    now = time.time()
    for tree in OUTPUT_TREES:
        for path in _temp_files(output_dir / tree):
            if _may_be_in_use(path, now, min_age_s):
                continue
            try:
                path.unlink()
            except FileNotFoundError:  # its writer finished or cleaned up meanwhile
                continue
            except OSError as exc:
                log.warning("cannot remove orphaned temporary file %s: %s", path, exc)
                continue
            removed += 1
    return removed


def _temp_files(root: Path) -> list[Path]:
    """Every temporary output file under ``root``, not following symlinks
    (a link out of the output tree must not lead the cleanup elsewhere)."""
    found: list[Path] = []
    for directory, _, names in os.walk(root):
        found.extend(Path(directory, name) for name in names if _TEMP_FILE.match(name))
    return found


def _may_be_in_use(path: Path, now: float, min_age_s: float) -> bool:
    match = _TEMP_FILE.match(path.name)
    pid = int(match.group(1)) if match and match.group(1) else None
    if pid is not None and _pid_alive(pid):
        return True
    try:
        return now - path.lstat().st_mtime < min_age_s
    except FileNotFoundError:
        return True  # gone already: nothing to do


def _pid_alive(pid: int) -> bool:
    """Whether process ``pid`` exists on this host (signal 0 checks, sends nothing)."""
    if pid <= 0:  # 0 and negatives name process groups, not a process
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by another user
        return True
    except OverflowError:  # larger than any pid
        return False
    return True
