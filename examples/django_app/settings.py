"""The whole project's settings: one app (this package), SQLite, no contrib apps."""

from __future__ import annotations

import os
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent

SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "django-insecure-example-only")
DEBUG = os.environ.get("DJANGO_DEBUG", "1") == "1"
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]

INSTALLED_APPS = ["django_app"]
# A JSON API without sessions or cookies, so no CSRF middleware; keep your project's own.
MIDDLEWARE: list[str] = []
ROOT_URLCONF = "django_app.urls"
WSGI_APPLICATION = "django_app.wsgi.application"

DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": BASE_DIR / "db.sqlite3"}}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
USE_TZ = True

# fastjobs (read by django_app/jobs.py). The worker is another process, so the jobs live in
# Redis: memory:// is one process's.
FASTJOBS_URL = os.environ.get("FASTJOBS_URL", "redis://127.0.0.1:6379/0")
FASTJOBS_PREFIX = os.environ.get("FASTJOBS_PREFIX", "fastjobs")
