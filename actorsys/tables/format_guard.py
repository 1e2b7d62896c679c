"""Refuse to start one output format on a directory the other one wrote.

The two formats cannot share a directory: a table's committer removes data
files its log does not reference (attempts that were never committed), so
``format = "delta"`` started on plain Parquet output would delete it; and
plain Parquet files written into a table's directory are invisible to its
readers. Kept free of heavy imports: the daemon calls it before anything starts.
"""

from __future__ import annotations

import os
from pathlib import Path

from actorsys.errors import ConfigError

OUTPUT_SUBDIRS = ("raw", "agg", "agg_hourly")
DELTA_LOG = "_delta_log"


def _holds_parquet_files(directory: Path) -> bool:
    for _, subdirs, names in os.walk(directory):
        subdirs[:] = [name for name in subdirs if not name.startswith(("_", "."))]
        if any(name.endswith(".parquet") for name in names):
            return True
    return False


def check_output_format(output_dir: Path, output_format: str) -> None:
    """Raise a one-line ConfigError when ``output_dir`` holds the other format."""
    for name in OUTPUT_SUBDIRS:
        directory = output_dir / name
        if not directory.is_dir():
            continue
        is_table = (directory / DELTA_LOG).is_dir()
        if output_format == "delta" and not is_table and _holds_parquet_files(directory):
            raise ConfigError(
                f"[output] dir {str(output_dir)!r} holds plain Parquet output ({name}/ has "
                'no Delta log): keep format = "parquet" for it, or give format = "delta" '
                "a new dir"
            )
        if output_format == "parquet" and is_table:
            raise ConfigError(
                f"[output] dir {str(output_dir)!r} holds Delta tables ({name}/_delta_log): "
                'keep format = "delta" for it, or give format = "parquet" a new dir'
            )
