"""Django and fastjobs: a minimal project (this package is its settings and its one app)."""
