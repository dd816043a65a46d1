"""Flask and fastjobs: a view that enqueues with enqueue_sync, and one that reads the job back."""
