"""Runnable examples of Stalwart (each one is exercised by a test)."""
