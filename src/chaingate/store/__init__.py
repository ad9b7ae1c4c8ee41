"""PostgreSQL through asyncpg: the pool, migrations, and one repository module per aggregate."""

from chaingate.store.db import connect_pool
from chaingate.store.migrate import apply_migrations

__all__ = ["apply_migrations", "connect_pool"]
