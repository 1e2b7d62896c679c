"""Starting one output format on the other's directory is refused, in one line."""

from __future__ import annotations

from pathlib import Path

import pytest

from actorsys.errors import ConfigError
from actorsys.tables.format_guard import check_output_format


def _parquet_output(root: Path) -> None:
    day = root / "raw" / "date=2026-01-01"
    day.mkdir(parents=True)
    (day / "t-0-0-10.parquet").write_bytes(b"x")


def _delta_output(root: Path) -> None:
    (root / "raw" / "_delta_log").mkdir(parents=True)
    (root / "raw" / "_delta_log" / "00000000000000000000.json").write_text("{}")


def test_a_new_or_empty_dir_suits_either_format(tmp_path: Path) -> None:
    (tmp_path / "raw").mkdir()
    for fmt in ("delta", "parquet"):
        check_output_format(tmp_path, fmt)
        check_output_format(tmp_path / "missing", fmt)


def test_delta_on_plain_parquet_output_is_refused_naming_the_fix(tmp_path: Path) -> None:
    _parquet_output(tmp_path)
    check_output_format(tmp_path, "parquet")
    with pytest.raises(ConfigError, match=r'holds plain Parquet output.*keep format = "parquet"'):
        check_output_format(tmp_path, "delta")


def test_parquet_on_delta_tables_is_refused(tmp_path: Path) -> None:
    _delta_output(tmp_path)
    check_output_format(tmp_path, "delta")
    with pytest.raises(ConfigError, match=r"holds Delta tables \(raw/_delta_log\)"):
        check_output_format(tmp_path, "parquet")


def test_files_under_hidden_or_internal_directories_do_not_count(tmp_path: Path) -> None:
    hidden = tmp_path / "agg" / ".trash"
    hidden.mkdir(parents=True)
    (hidden / "old.parquet").write_bytes(b"x")
    check_output_format(tmp_path, "delta")
