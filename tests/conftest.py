"""Shared test configuration. The tests' helpers live in tests/support (on pytest's `pythonpath`)."""

import os

import pytest

# No farm configuration file (wheelfarm.toml: the clone's own, or a developer's) leaks into the
# tests, or their subprocesses: like pip's PIP_CONFIG_FILE, os.devnull means "read none". The tests
# of the configuration itself (tests/common/test_farmconfig.py) set it back explicitly.
os.environ["WHEELFARM_CONFIG"] = os.devnull


@pytest.fixture(scope="session")
def postgres():
    """One real PostgreSQL (Debian's) for the session; each test makes its own database in it
    (`new_database()`)."""
    from support.postgres import PostgresServer

    server = PostgresServer()
    server.start()  # raises with the reason if PostgreSQL cannot start: never a silent skip
    yield server
    server.stop()
