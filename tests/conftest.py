"""Shared test configuration. The tests' helpers live in tests/support (on pytest's `pythonpath`)."""
