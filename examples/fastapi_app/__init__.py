"""FastAPI and fastjobs: an endpoint that enqueues, the App opened and closed by the lifespan,
the dashboard at /jobs behind the app's own authentication."""
