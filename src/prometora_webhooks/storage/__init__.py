"""Storage: SQLAlchemy Core tables, one set of queries for SQLite and PostgreSQL, migrations."""
