from django.core.management.base import BaseCommand, CommandError, CommandParser

from apps.billing.services import budget_periods_reconcile


class Command(BaseCommand):
    help = (
        "Compare every budget period's used/reserved counters with the usage ledger and the open "
        "reservations, and correct them (the daily beat task does the same for recent periods)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--check", action="store_true", help="Report differences; change nothing.")
        parser.add_argument("--all", action="store_true", help="Every period, not only recent ones.")

    def handle(self, *args, **options) -> None:
        found = budget_periods_reconcile(fix=not options["check"], everything=options["all"])
        for difference in found:
            self.stdout.write(str(difference))
        if not found:
            self.stdout.write(self.style.SUCCESS("Every period agrees with the ledger."))
        elif options["check"]:
            raise CommandError(f"{len(found)} period(s) disagree with the ledger.")
        else:
            self.stdout.write(self.style.WARNING(f"{len(found)} period(s) corrected."))
