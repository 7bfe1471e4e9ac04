"""Old name of twin.core.embedded.kafka, kept so existing imports work."""

from twin.core.embedded.kafka import *  # noqa: F403
