"""Alembic environment: runs against the connection handed over by `upgrade_database`."""

from alembic import context

from central.db import Base

config = context.config
connection = config.attributes.get("connection")
if connection is None:
    from central.db import make_engine

    connection = make_engine(config.get_main_option("sqlalchemy.url")).connect()

context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    render_as_batch=connection.dialect.name == "sqlite",
)
with context.begin_transaction():
    context.run_migrations()
