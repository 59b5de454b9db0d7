"""Django's ASGI handler, run so that a request costs one trip to a thread instead of about ten,
in a thread kept from an earlier request instead of a new one."""

from concurrent.futures import ThreadPoolExecutor

from asgiref.sync import ThreadSensitiveContext, sync_to_async
from django.core.handlers.asgi import ASGIHandler
from django.http import HttpRequest, HttpResponseBase

# Idle request threads kept per process; a burst beyond it starts (and then ends) more.
IDLE_THREADS_KEPT = 32


class SyncChainASGIHandler(ASGIHandler):
    """Serve HTTP with the whole middleware chain and the view in sync mode, in one thread hop,
    on a thread kept from an earlier request.

    Our middleware and views are sync. Django's async chain adapts each sync-only middleware and
    each MiddlewareMixin's process_request/process_response on its own, about ten trips between
    the event loop and the request's thread per request, each paying for a thread switch under the
    GIL. As in Django, all of a request's sync work (request_started, the chain and the view,
    streaming, request_finished) runs on one thread of its own, so requests still run side by
    side and a request's database connection is returned by the thread that used it. Django
    starts that thread for each request and ends it afterwards (about a tenth of a warm widget's
    CPU under uvicorn); here a finished request's thread waits for the next request.
    """

    def __init__(self) -> None:
        super().__init__()
        self._idle_threads: list[ThreadPoolExecutor] = []  # touched by the event loop only

    def load_middleware(self, is_async: bool = False) -> None:
        super().load_middleware(is_async=False)

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            raise ValueError(f"Django can only handle ASGI/HTTP connections, not {scope['type']}.")
        thread = self._idle_threads.pop() if self._idle_threads else ThreadPoolExecutor(1, "request")
        try:
            async with ThreadSensitiveContext(executor=thread):
                await self.handle(scope, receive, send)
        except BaseException:
            # Cut short (a cancelled task): the thread may still be busy with this request.
            thread.shutdown(wait=False)
            raise
        # handle() returns once request_finished has run on the thread, after the view even when
        # the client went away, so the thread is idle now.
        if len(self._idle_threads) < IDLE_THREADS_KEPT:
            self._idle_threads.append(thread)
        else:
            thread.shutdown(wait=False)

    async def get_response_async(self, request: HttpRequest) -> HttpResponseBase:
        return await sync_to_async(self.get_response, thread_sensitive=True)(request)
