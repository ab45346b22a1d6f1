"""Shared test configuration. The tests' helpers live in tests/support (on pytest's `pythonpath`)."""

import os

# No farm configuration file (wheelfarm.toml: the clone's own, or a developer's) leaks into the
# tests, or their subprocesses: like pip's PIP_CONFIG_FILE, os.devnull means "read none". The tests
# of the configuration itself (tests/common/test_farmconfig.py) set it back explicitly.
os.environ["WHEELFARM_CONFIG"] = os.devnull
