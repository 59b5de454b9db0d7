import os

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from apps.accounts.services import DEMO_PASSWORD, demo_org_ensure
from apps.connections.services.demo_warehouse import demo_connection_ensure


class Command(BaseCommand):
    help = "Create the demo organisation Acme and its users (embedded default only). Safe to rerun."

    def handle(self, *args, **options) -> None:
        if not settings.DEBUG:
            raise CommandError("Demo users are never created in production mode (DEBUG is off).")
        org = demo_org_ensure()
        self.stdout.write("Preparing the demo warehouse (about a million rows, built once)…")
        connection = demo_connection_ensure(org=org)
        port = os.environ.get("PORT", "8000")
        self.stdout.write(
            self.style.SUCCESS(
                "\n"
                f"  DataMind is starting at http://127.0.0.1:{port}/\n"
                f"  Demo organisation: {org.name}, connected to “{connection.name}”"
                f" ({connection.catalog_tables.count()} tables)\n"
                f"    admin@acme.test    / {DEMO_PASSWORD}   (admin)\n"
                f"    analyst@acme.test  / {DEMO_PASSWORD}   (analyst)\n"
                "  Press Ctrl-C to stop the web server, the worker and beat.\n"
            )
        )
