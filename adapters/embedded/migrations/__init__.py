"""Alembic revisions of the embedded engine's tables (branch "embedded"); a package so that wheels ship them."""
