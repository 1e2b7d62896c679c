"""The daemon process stays light: every actor process is forked from it and
keeps what it imported, so a heavy library imported there costs its resident
memory once per process (pyarrow with numpy: about 85 MB each)."""

from __future__ import annotations

import subprocess
import sys

HEAVY = ("pyarrow", "numpy", "pandas", "polars", "duckdb", "deltalake")


def test_the_cli_and_the_daemon_import_no_data_library() -> None:
    code = (
        "import sys, actorsys.cli, actorsys.daemon, actorsys.actors.supervisor; "
        f"print(','.join(m for m in {HEAVY!r} if m in sys.modules))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert done.stdout.strip() == ""
