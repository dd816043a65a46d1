from __future__ import annotations

import json

from django.db import transaction
from django.db.models import F
from django.http import HttpRequest, JsonResponse

from .jobs import send_receipt
from .models import Order, Product


class OutOfStock(Exception):
    """Raised inside the transaction to roll the order back."""


def place_order(request: HttpRequest) -> JsonResponse:
    """POST {"product": name, "quantity": n}: a plain view, served by WSGI and ASGI alike."""
    if request.method != "POST":
        return JsonResponse({"error": "POST only"}, status=405)
    body = json.loads(request.body or b"{}")
    product = Product.objects.filter(name=body.get("product")).first()
    quantity = body.get("quantity")
    if product is None or not isinstance(quantity, int) or quantity < 1:
        return JsonResponse({"error": 'POST {"product": <name>, "quantity": <n >= 1>}'}, status=400)
    try:
        with transaction.atomic():
            order = Order.objects.create(product=product, quantity=quantity)
            # Enqueued only once the order is committed: a worker that picks the job up at
            # once finds the order, and a rolled-back order sends no receipt.
            transaction.on_commit(lambda: send_receipt.enqueue_sync(order.pk))
            taken = Product.objects.filter(pk=product.pk, stock__gte=quantity).update(stock=F("stock") - quantity)
            if not taken:
                raise OutOfStock
    except OutOfStock:
        return JsonResponse({"error": f"only {product.stock} {product.name} left"}, status=409)
    return JsonResponse({"order": order.pk}, status=201)


async def resend_receipt(request: HttpRequest, order_id: int) -> JsonResponse:
    """POST: an async view (served by ASGI), so it awaits the enqueue."""
    if request.method != "POST":
        return JsonResponse({"error": "POST only"}, status=405)
    if not await Order.objects.filter(pk=order_id).aexists():
        return JsonResponse({"error": f"no order {order_id}"}, status=404)
    job = await send_receipt.enqueue(order_id)
    return JsonResponse({"job_id": job.id}, status=202)
