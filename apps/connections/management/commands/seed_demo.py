import time
from argparse import ArgumentParser

from django.core.management.base import BaseCommand

from apps.connections.services.demo_warehouse import (
    DEMO_WAREHOUSE_VERSION,
    demo_warehouse_build,
    demo_warehouse_default_path,
    demo_warehouse_is_current,
    demo_warehouse_row_counts,
)


class Command(BaseCommand):
    help = (
        "Build the demo DuckDB warehouse in CONNECTIONS_FILE_ROOT. "
        "Does nothing when a warehouse of the current version is already there, unless --force."
    )

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument("--force", action="store_true", help="Rebuild even if the warehouse is current.")

    def handle(self, *args, force: bool = False, **options) -> None:
        path = demo_warehouse_default_path()
        was_current = not force and demo_warehouse_is_current(path=path)
        started = time.monotonic()
        demo_warehouse_build(path=path, force=force)
        seconds = time.monotonic() - started
        counts = demo_warehouse_row_counts(path=path)

        if was_current:
            self.stdout.write(f"Demo warehouse is up to date ({DEMO_WAREHOUSE_VERSION}): {path}")
        else:
            self.stdout.write(
                self.style.SUCCESS(
                    f"Demo warehouse built in {seconds:.1f} s ({DEMO_WAREHOUSE_VERSION}): {path}"
                )
            )
        width = max(len(table) for table in counts)
        for table, rows in counts.items():
            self.stdout.write(f"  {table:<{width}}  {rows:>10,}")
        self.stdout.write(f"  {'total':<{width}}  {sum(counts.values()):>10,}")
