"""Encryption at rest for secrets stored in our database (connection passwords, LLM API keys).

Fernet (AES-128-CBC + HMAC) through MultiFernet: the first key in settings.FIELD_ENCRYPTION_KEYS
encrypts, every key decrypts, so keys rotate by putting a new one first and running
`manage.py rotate_encryption_keys`. Without that setting one key is derived from SECRET_KEY.
"""

import base64
import hashlib
from functools import cache

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings
from django.db import models


def derive_key(secret: str) -> str:
    digest = hashlib.sha256(b"datamind.field-encryption:" + secret.encode()).digest()
    return base64.urlsafe_b64encode(digest).decode()


@cache
def _fernet(keys: tuple[str, ...]) -> MultiFernet:
    return MultiFernet([Fernet(k.encode()) for k in keys])


def fernet() -> MultiFernet:
    keys = tuple(settings.FIELD_ENCRYPTION_KEYS) or (derive_key(settings.SECRET_KEY),)
    return _fernet(keys)


def encrypt(plaintext: str) -> str:
    return fernet().encrypt(plaintext.encode()).decode()


def decrypt(token: str) -> str:
    return fernet().decrypt(token.encode()).decode()


def rotate(token: str) -> str:
    return fernet().rotate(token.encode()).decode()


class EncryptedTextField(models.TextField):
    """A text column stored as a Fernet token; Python code only ever sees the plaintext.

    The empty string is stored as is, so "no password" needs no decryption.
    """

    def from_db_value(self, value, expression, connection):
        if not value:
            return value
        try:
            return decrypt(value)
        except InvalidToken as exc:
            raise ValueError(
                f"Cannot decrypt {self.model.__name__}.{self.name}: the encryption key changed. "
                "Put the old key back in FIELD_ENCRYPTION_KEYS (after the new one)."
            ) from exc

    def get_prep_value(self, value):
        value = super().get_prep_value(value)
        if not value:
            return value
        return encrypt(value)


def encrypted_values_rotate() -> dict[str, int]:
    """Re-encrypt every stored secret with the first key of FIELD_ENCRYPTION_KEYS.

    Reading decrypts with whichever key works and writing encrypts with the first, so after a
    new key is put first and this has run, the old keys can be removed. Returns rows per field.
    """
    from django.apps import apps
    from django.db import transaction

    rotated: dict[str, int] = {}
    with transaction.atomic():
        for model in apps.get_models():
            for field in model._meta.concrete_fields:
                if not isinstance(field, EncryptedTextField):
                    continue
                rows = model.objects.exclude(**{field.name: ""}).values_list("pk", field.name)
                for pk, plaintext in rows.iterator():
                    model.objects.filter(pk=pk).update(**{field.name: plaintext})
                rotated[f"{model._meta.label}.{field.name}"] = rows.count()
    return rotated
