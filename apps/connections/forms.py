from pathlib import Path
from typing import Any

from django import forms
from django.conf import settings
from django.core.exceptions import ValidationError

from apps.accounts.forms import ServiceForm
from apps.connections.models import OPTION_DEFAULTS, SSL_MODES, Connection, Engine, ExportFormat
from apps.connections.services.targets import connection_options_clean

FILE_ENGINES = (Engine.SQLITE, Engine.DUCKDB)
# The suffixes the file engines accept; other files in the folder are not offered.
_FILE_SUFFIXES = (".sqlite", ".sqlite3", ".db", ".duckdb")
OPTION_FIELDS = ("sslmode", "schema", "statement_timeout_s", "connect_timeout_s", "row_cap", "cache_ttl_s")


def warehouse_files() -> list[str]:
    """The database files an admin may point a SQLite or DuckDB connection at."""
    root = Path(settings.CONNECTIONS_FILE_ROOT)
    if not root.is_dir():
        return []
    return sorted(
        path.name
        for path in root.iterdir()
        if path.is_file() and not path.name.startswith(".") and path.name.lower().endswith(_FILE_SUFFIXES)
    )


def _option_field(label: str, help_text: str) -> forms.IntegerField:
    return forms.IntegerField(label=label, required=False, help_text=help_text)


class ConnectionForm(ServiceForm):
    """A connection's fields. The password is write-only: it is never rendered back, and on an
    edit an empty password keeps the stored one."""

    name = forms.CharField(label="Name", max_length=120, widget=forms.TextInput(attrs={"autofocus": True}))
    engine = forms.ChoiceField(label="Database engine", choices=Engine.choices, initial=Engine.POSTGRESQL)
    host = forms.CharField(
        label="Host",
        required=False,
        max_length=255,
        widget=forms.TextInput(attrs={"placeholder": "db.example.com", "autocomplete": "off"}),
    )
    port = forms.IntegerField(label="Port", required=False, help_text="Empty: 5432 or 3306.")
    database = forms.CharField(label="Database name", required=False, max_length=255)
    username = forms.CharField(
        label="User", required=False, max_length=255, widget=forms.TextInput(attrs={"autocomplete": "off"})
    )
    password = forms.CharField(
        label="Password",
        required=False,
        strip=False,
        widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}, render_value=False),
    )
    clear_password = forms.BooleanField(label="Clear the saved password", required=False)
    file_name = forms.CharField(
        label="Database file",
        required=False,
        max_length=255,
        widget=forms.TextInput(attrs={"list": "warehouse-files", "autocomplete": "off"}),
        help_text="The file's name in the warehouse folder, e.g. sales.duckdb (no folders).",
    )

    sslmode = forms.ChoiceField(
        label="SSL mode",
        required=False,
        choices=[(mode, mode) for mode in SSL_MODES],
        initial=OPTION_DEFAULTS["sslmode"],
        help_text="PostgreSQL only; use verify-full where the server has a certificate.",
    )
    schema = forms.CharField(
        label="Default schema",
        required=False,
        max_length=63,
        help_text="Read only this schema's tables; empty reads every schema the user can see.",
    )
    statement_timeout_s = _option_field(
        "Statement timeout (seconds)",
        f"Queries are cancelled after this. Default {OPTION_DEFAULTS['statement_timeout_s']}.",
    )
    connect_timeout_s = _option_field(
        "Connect timeout (seconds)",
        f"Give up connecting after this. Default {OPTION_DEFAULTS['connect_timeout_s']}.",
    )
    row_cap = _option_field(
        "Row cap", f"The most rows a query returns to the app. Default {OPTION_DEFAULTS['row_cap']}."
    )
    cache_ttl_s = _option_field(
        "Results cache (seconds)",
        f"How long a result is reused for the same statement; 0 turns caching off. "
        f"Default {OPTION_DEFAULTS['cache_ttl_s']}.",
    )

    def __init__(self, *args: Any, instance: Connection | None = None, **kwargs: Any) -> None:
        if instance is not None and "initial" not in kwargs:
            kwargs["initial"] = self.initial_for(instance)
        super().__init__(*args, **kwargs)
        self.instance = instance
        self.warehouse_files = warehouse_files()
        if self.is_bound or instance is not None:
            # Only an empty new form starts at the name; an edit, or a form back with errors, does not.
            self.fields["name"].widget.attrs.pop("autofocus", None)
        if instance is None:
            del self.fields["clear_password"]
            return
        self.fields["password"].help_text = (
            "Leave empty to keep the saved password." if instance.password else "No password is saved."
        )

    @staticmethod
    def initial_for(connection: Connection) -> dict[str, Any]:
        is_file = connection.is_file_engine
        return {
            "name": connection.name,
            "engine": connection.engine,
            "host": connection.host,
            "port": connection.port,
            "database": "" if is_file else connection.database,
            "file_name": connection.database if is_file else "",
            "username": connection.username,
            **{name: connection.options.get(name) for name in OPTION_FIELDS},
            "sslmode": connection.option("sslmode"),
        }

    @property
    def is_file_engine(self) -> bool:
        engine = self["engine"].value()
        return engine in FILE_ENGINES

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        # Each option is checked on its own by the service's rule, so a bad value is shown
        # beside its own field rather than at the top of the form.
        for name in OPTION_FIELDS:
            value = cleaned.get(name)
            if name in self.errors or value in (None, ""):
                continue
            try:
                connection_options_clean({name: value})
            except ValidationError as error:
                self.add_error(name, error.message_dict.get("options", error.messages))
        return cleaned

    def service_data(self) -> dict[str, Any]:
        """The `data` for connection_create / connection_update. Fields of the other kind of
        engine are dropped: they may still hold what was typed before the engine changed."""
        data = self.cleaned_data
        is_file = data["engine"] in FILE_ENGINES
        options = {name: data.get(name) for name in OPTION_FIELDS if data.get(name) not in (None, "")}
        if is_file:
            options.pop("sslmode", None)
        return {
            "name": data["name"].strip(),
            "engine": data["engine"],
            "host": "" if is_file else data["host"],
            "port": None if is_file else data["port"],
            "database": data["file_name"] if is_file else data["database"],
            "username": "" if is_file else data["username"],
            "options": options,
        }

    def service_password(self) -> str | None:
        """The password to store, or None to keep the saved one (edits only)."""
        if self.cleaned_data.get("clear_password"):
            return ""
        password = self.cleaned_data.get("password") or ""
        if self.instance is not None and not password:
            return None
        return password

    def add_service_error(self, error: ValidationError) -> None:
        """The service names model fields; a file engine's `database` is the file field here, and
        an `options` error goes to the options this form shows."""
        if hasattr(error, "error_dict") and self.is_file_engine and "database" in error.error_dict:
            error = ValidationError(
                {("file_name" if name == "database" else name): e for name, e in error.error_dict.items()}
            )
        super().add_service_error(error)


class ColumnExcludeForm(forms.Form):
    column = forms.IntegerField(min_value=1)
    excluded = forms.BooleanField(required=False)


class SqlForm(forms.Form):
    sql = forms.CharField(
        label="SQL",
        strip=False,
        max_length=100_000,
        widget=forms.Textarea(
            attrs={
                "rows": 10,
                "class": "sql-editor",
                "spellcheck": "false",
                "autocapitalize": "off",
                "autocomplete": "off",
                "placeholder": "SELECT …",
            }
        ),
        error_messages={"required": "Write a query to run."},
    )
    page = forms.IntegerField(min_value=1, required=False, widget=forms.HiddenInput)

    def clean_sql(self) -> str:
        sql = self.cleaned_data["sql"]
        if not sql.strip():
            raise ValidationError("Write a query to run.")
        return sql


class ExportForm(forms.Form):
    sql = forms.CharField(
        strip=False, max_length=100_000, error_messages={"required": "There is no query to export."}
    )
    format = forms.ChoiceField(choices=ExportFormat.choices)


class CatalogueSearchForm(forms.Form):
    q = forms.CharField(
        label="Search tables and columns",
        required=False,
        max_length=200,
        widget=forms.TextInput(
            attrs={"type": "search", "placeholder": "Table, column or comment", "autocomplete": "off"}
        ),
    )

    def query(self) -> str:
        """The search text, or "" when there is none (or it is too long to be a name)."""
        return self.cleaned_data["q"].strip() if self.is_valid() else ""
