"""Automatic checkers for the notebook exercises (one module per notebook)."""
