from django.core.management.base import BaseCommand

from datamind.lib.crypto import encrypted_values_rotate


class Command(BaseCommand):
    help = (
        "Re-encrypt every stored secret (connection passwords, LLM API keys) with the first key of "
        "FIELD_ENCRYPTION_KEYS. Put the new key first, run this, then drop the old key."
    )

    def handle(self, *args, **options) -> None:
        for field, count in encrypted_values_rotate().items():
            self.stdout.write(f"{field}: {count} re-encrypted")
        self.stdout.write(self.style.SUCCESS("Done: every secret is now encrypted with the first key."))
