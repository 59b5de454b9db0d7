"""ASGI entry point: HTTP through Django, WebSockets (all under /ws/) through Channels."""

import gc
import os

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "datamind.settings")
# Django must be set up before anything imports models (the consumers do).
django.setup(set_prefix=False)

from datamind.handlers import SyncChainASGIHandler  # noqa: E402

django_asgi_app = SyncChainASGIHandler()

from channels.auth import AuthMiddlewareStack  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from channels.security.websocket import AllowedHostsOriginValidator  # noqa: E402

from apps.chat.services.providers import warm_up_providers  # noqa: E402
from datamind.routing import websocket_urlpatterns  # noqa: E402

# Import the model SDKs now rather than on the first question (the import takes seconds).
warm_up_providers()
# What start-up made (Django, the apps, the SDKs) lives as long as the process. Frozen, it is left
# out of the collector's full passes, which scanned all of it and stopped every chat of the
# process for 100-250 ms at a time (measured by bench/chat.py).
gc.freeze()

application = ProtocolTypeRouter(
    {
        "http": django_asgi_app,
        "websocket": AllowedHostsOriginValidator(AuthMiddlewareStack(URLRouter(websocket_urlpatterns))),
    }
)
