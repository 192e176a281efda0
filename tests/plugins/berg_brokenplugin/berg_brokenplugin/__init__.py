"""Test-only plugins that misbehave."""
