import pytest
from cryptography.fernet import Fernet, InvalidToken
from django.core.management import call_command
from django.db import connection as db_connection

from apps.connections.tests.factories import ConnectionFactory
from datamind.lib import crypto


def _raw_password(pk: int) -> str:
    with db_connection.cursor() as cursor:
        cursor.execute("SELECT password FROM connections_connection WHERE id = %s", [pk])
        return cursor.fetchone()[0]


@pytest.mark.django_db
def test_rotation_re_encrypts_every_secret_with_the_new_key_so_the_old_one_can_go(settings):
    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    settings.FIELD_ENCRYPTION_KEYS = [old]
    connection = ConnectionFactory(password="s3cret-pw")
    settings.FIELD_ENCRYPTION_KEYS = [new, old]

    call_command("rotate_encryption_keys")

    raw = _raw_password(connection.pk)
    assert Fernet(new.encode()).decrypt(raw.encode()) == b"s3cret-pw"
    with pytest.raises(InvalidToken):
        Fernet(old.encode()).decrypt(raw.encode())
    settings.FIELD_ENCRYPTION_KEYS = [new]
    connection.refresh_from_db()
    assert connection.password == "s3cret-pw"


@pytest.mark.django_db
def test_a_secret_under_a_removed_key_says_how_to_recover(settings):
    settings.FIELD_ENCRYPTION_KEYS = [Fernet.generate_key().decode()]
    connection = ConnectionFactory(password="s3cret-pw")
    settings.FIELD_ENCRYPTION_KEYS = [Fernet.generate_key().decode()]

    with pytest.raises(ValueError, match="Put the old key back in FIELD_ENCRYPTION_KEYS"):
        type(connection).objects.get(pk=connection.pk)


def test_the_derived_key_is_a_valid_fernet_key():
    Fernet(crypto.derive_key("any secret").encode())
