"""Old name of twin.core.embedded.postgres, kept so existing imports work."""

from twin.core.embedded.postgres import *  # noqa: F403
