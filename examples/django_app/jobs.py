"""The jobs: what ``fastjobs worker django_app.jobs:jobs`` imports.

The worker is not started by Django, so this module names the settings and the worker sets
Django up before its first job.
"""

from __future__ import annotations

import os

import django
import fastjobs
from django import db
from django.conf import settings

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "django_app.settings")  # as manage.py does
jobs = fastjobs.App(settings.FASTJOBS_URL, prefix=settings.FASTJOBS_PREFIX)


@jobs.on_worker_start
def setup_django(state: fastjobs.WorkerState) -> None:
    django.setup()  # loads the apps and models (a no-op where Django is already set up)


@jobs.task(name="shop.send_receipt", queue="emails")
def send_receipt(order_id: int) -> str:
    from .models import Order  # the models can be imported once Django is set up

    # A plain def runs on the worker's threads: like Django after each request, close this
    # thread's database connection when done.
    try:
        order = Order.objects.select_related("product").get(pk=order_id)
        return f"receipt for order {order.pk}: {order.quantity} x {order.product.name}"
    finally:
        db.close_old_connections()
