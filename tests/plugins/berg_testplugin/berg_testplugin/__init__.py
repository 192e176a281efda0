"""A tiny berg plugin for tests."""
