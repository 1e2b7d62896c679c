"""Durable file system steps shared by every writer of output files."""

from __future__ import annotations

import os
from pathlib import Path


def ensure_directory(directory: Path) -> None:
    """Create ``directory`` and missing parents, fsyncing each new entry (so a
    file renamed into it survives a crash with its directory)."""
    if directory.is_dir():
        return
    ensure_directory(directory.parent)
    # Another worker may create it between the check and here.
    directory.mkdir(exist_ok=True)
    fsync_directory(directory.parent)


def fsync_directory(directory: Path) -> None:
    """Make renames and creations inside ``directory`` durable."""
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
