"""Tests of the core Step (a package, so module names cannot clash with other test areas)."""
