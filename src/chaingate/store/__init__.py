"""PostgreSQL through asyncpg: the pool, migrations, and one repository module per aggregate."""

from chaingate.store.db import advisory_lock_id, connect_pool
from chaingate.store.migrate import apply_migrations

__all__ = ["advisory_lock_id", "apply_migrations", "connect_pool"]
