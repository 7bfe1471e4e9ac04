"""Old name of twin.core.embedded (the embedded broker and PostgreSQL), kept for existing imports."""
