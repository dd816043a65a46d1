"""Transactional enqueue on PostgreSQL: the job commits, or rolls back, with the application's data."""
