"""Django set up before the tests import the project, and its test database.

No test wraps itself in a transaction (as django.test.TestCase would): on_commit must see real
commits. The database is a file, since the worker's threads open connections of their own.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import django
import pytest
from django import db
from django.test.utils import setup_test_environment, teardown_test_environment

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "django_app.settings")
django.setup()


@pytest.fixture(scope="package", autouse=True)
def database(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    setup_test_environment()
    db.connection.settings_dict["TEST"]["NAME"] = str(tmp_path_factory.mktemp("django") / "test.sqlite3")
    name = db.connection.creation.create_test_db(verbosity=0)
    yield
    db.connection.creation.destroy_test_db(name, verbosity=0)
    teardown_test_environment()
