"""Django's ASGI handler, run so that a request costs one trip to a thread instead of about ten."""

from asgiref.sync import sync_to_async
from django.core.handlers.asgi import ASGIHandler
from django.http import HttpRequest, HttpResponseBase


class SyncChainASGIHandler(ASGIHandler):
    """Serve HTTP with the whole middleware chain and the view in sync mode, in one thread hop.

    Our middleware and views are sync. Django's async chain adapts each sync-only middleware and
    each MiddlewareMixin's process_request/process_response on its own, about ten trips between
    the event loop and the request's thread per request, each paying for a thread switch under the
    GIL. The sync chain runs in the request's own thread (Django's ThreadSensitiveContext), so
    requests still run side by side; async views, if any, are awaited from it by async_to_sync.
    """

    def load_middleware(self, is_async: bool = False) -> None:
        super().load_middleware(is_async=False)

    async def get_response_async(self, request: HttpRequest) -> HttpResponseBase:
        return await sync_to_async(self.get_response, thread_sensitive=True)(request)
