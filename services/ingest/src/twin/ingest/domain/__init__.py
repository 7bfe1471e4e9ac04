"""Pure ingest logic: numpy arrays and frozen dataclasses, no I/O."""
