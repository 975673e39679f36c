"""Test-suite helpers shipped with the package (pytest plugins)."""
