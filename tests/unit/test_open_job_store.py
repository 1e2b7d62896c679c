"""Opening a job store from its URL: the forms accepted and the errors refused.

Needs no database server: SQLite files live in tmp_path and the PostgreSQL
case points at a port nobody listens on.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from actorsys.errors import ConfigError, JobStoreError
from actorsys.jobs.open import open_job_store


def test_sqlite_url_relative_path_creates_parent_directories(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a working directory without data/nested/
    monkeypatch.chdir(tmp_path)
    # When a store is opened at a relative URL, with NORMAL durability
    store = open_job_store("sqlite:///data/nested/jobs.db?synchronous=normal")
    store.close()
    # Then the file exists under the working directory
    assert (tmp_path / "data" / "nested" / "jobs.db").is_file()
    assert getattr(store, "synchronous", None) == "NORMAL"


def test_sqlite_url_with_four_slashes_is_absolute(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a working directory elsewhere
    (tmp_path / "cwd").mkdir()
    monkeypatch.chdir(tmp_path / "cwd")
    absolute = tmp_path / "abs" / "jobs.db"
    # When a store is opened at sqlite:////<absolute path>
    url = f"sqlite:///{absolute}"
    assert url.startswith("sqlite:////")
    open_job_store(url).close()
    # Then the file is at that absolute path, not under the working directory
    assert absolute.is_file()
    assert not any((tmp_path / "cwd").iterdir())


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("mysql://u:secret@db/jobs", "unsupported scheme 'mysql'"),
        ("jobs.db", "unsupported scheme"),
        ("sqlite://host/jobs.db", "has no host"),
        ("sqlite:///", "no database file"),
        ("sqlite:///jobs.db?journal=wal", "unknown parameter 'journal'"),
        ("sqlite:///jobs.db?synchronous=OFF", "synchronous='OFF' is not one of"),
        ("sqlite:///jobs.db?busy_timeout_ms=soon", "busy_timeout_ms must be an integer"),
        ("postgresql://u:secret@h/db?schema=", "schema= needs a name"),
    ],
)
def test_bad_url_is_a_config_error(
    url: str, message: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a malformed URL / When it is opened / Then one line says what is wrong
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError, match=message) as caught:
        open_job_store(url)
    assert "secret" not in str(caught.value) and "\n" not in str(caught.value)


def test_sqlite_path_that_cannot_be_created_is_a_job_store_error(tmp_path: Path) -> None:
    # Given a path whose "directory" is a file
    (tmp_path / "file").write_text("")
    # When a store is opened inside it / Then the error names the URL
    with pytest.raises(JobStoreError, match="cannot create"):
        open_job_store(f"sqlite:///{tmp_path}/file/jobs.db")


def test_unreachable_postgres_is_a_job_store_error_without_password() -> None:
    # Given a URL whose port nobody listens on
    url = "postgresql://actor:secret@127.0.0.1:1/jobs?connect_timeout=2"
    # When it is opened / Then one line names it, password hidden
    with pytest.raises(JobStoreError, match="cannot connect") as caught:
        open_job_store(url)
    text = str(caught.value)
    assert "actor:***@127.0.0.1:1" in text and "secret" not in text and "\n" not in text
