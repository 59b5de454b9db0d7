"""A URLconf for the ASGI handler's tests: a view that needs a second request running beside it."""

import threading

from django.http import HttpResponse
from django.urls import path

BARRIER = threading.Barrier(2, timeout=5)


def meet(request):
    BARRIER.wait()  # a BrokenBarrierError (a 500) if the other request cannot run meanwhile
    return HttpResponse(str(threading.get_ident()))


def thread(request):
    return HttpResponse(str(threading.get_ident()))


urlpatterns = [path("meet/", meet), path("thread/", thread)]
