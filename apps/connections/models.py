from django.conf import settings
from django.db import models
from django.utils.timezone import now

from datamind.lib.crypto import EncryptedTextField


class Engine(models.TextChoices):
    POSTGRESQL = "postgresql", "PostgreSQL"
    MYSQL = "mysql", "MySQL / MariaDB"
    SQLITE = "sqlite", "SQLite"
    DUCKDB = "duckdb", "DuckDB"


# The only options a connection may carry, with their defaults. Anything else is refused: driver
# options such as libpq's `options=-c ...` or `passfile` are how peer tools were breached.
OPTION_DEFAULTS: dict[str, object] = {
    "sslmode": "prefer",
    "schema": "",
    "statement_timeout_s": 30,
    "connect_timeout_s": 10,
    "row_cap": 5000,
    "cache_ttl_s": 300,
}
SSL_MODES = ("disable", "allow", "prefer", "require", "verify-ca", "verify-full")


class ConnectionStatus(models.TextChoices):
    NEW = "new", "Not tested yet"
    OK = "ok", "Connected"
    ERROR = "error", "Failing"


class CatalogueStatus(models.TextChoices):
    EMPTY = "empty", "Not read yet"
    REFRESHING = "refreshing", "Refreshing"
    READY = "ready", "Ready"
    FAILED = "failed", "Last refresh failed"


class Connection(models.Model):
    """One of an organisation's databases.

    Structured fields only: there is no free-form DSN, so nothing a user types can smuggle libpq or
    driver options in. The password is encrypted at rest and never rendered back.
    """

    org = models.ForeignKey("accounts.Organization", on_delete=models.CASCADE, related_name="connections")
    name = models.CharField(max_length=120)
    engine = models.CharField(max_length=20, choices=Engine.choices)
    host = models.CharField(max_length=255, blank=True)
    port = models.PositiveIntegerField(null=True, blank=True)
    database = models.CharField(max_length=255, help_text="Database name, or a file name for SQLite/DuckDB.")
    username = models.CharField(max_length=255, blank=True)
    password = EncryptedTextField(blank=True)
    options = models.JSONField(default=dict, blank=True)

    status = models.CharField(max_length=10, choices=ConnectionStatus.choices, default=ConnectionStatus.NEW)
    last_tested_at = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True)

    catalogue_status = models.CharField(
        max_length=12, choices=CatalogueStatus.choices, default=CatalogueStatus.EMPTY
    )
    catalogue_version = models.PositiveIntegerField(default=0)
    catalogue_refreshed_at = models.DateTimeField(null=True, blank=True)
    catalogue_error = models.TextField(blank=True)
    catalogue_progress = models.JSONField(default=dict, blank=True)
    excluded_columns = models.JSONField(
        default=list, blank=True, help_text="Columns never sampled nor shown to the LLM: schema.table.column"
    )

    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(default=now)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]
        constraints = [models.UniqueConstraint(fields=["org", "name"], name="connection_name_unique_per_org")]

    def __str__(self) -> str:
        return self.name

    @property
    def dialect(self) -> str:
        """The sqlglot dialect name for this engine."""
        return {"postgresql": "postgres"}.get(self.engine, self.engine)

    def option(self, name: str):
        return self.options.get(name, OPTION_DEFAULTS[name])

    @property
    def is_file_engine(self) -> bool:
        return self.engine in (Engine.SQLITE, Engine.DUCKDB)


class CatalogTable(models.Model):
    """A table or view of a connection, as last read by a catalogue refresh."""

    connection = models.ForeignKey(Connection, on_delete=models.CASCADE, related_name="catalog_tables")
    schema = models.CharField(max_length=255, blank=True)
    name = models.CharField(max_length=255)
    is_view = models.BooleanField(default=False)
    comment = models.TextField(blank=True)
    row_estimate = models.BigIntegerField(null=True, blank=True)

    class Meta:
        ordering = ["schema", "name"]
        constraints = [
            models.UniqueConstraint(fields=["connection", "schema", "name"], name="catalog_table_unique")
        ]

    def __str__(self) -> str:
        return self.qualified_name

    @property
    def qualified_name(self) -> str:
        return f"{self.schema}.{self.name}" if self.schema else self.name


class CatalogColumn(models.Model):
    table = models.ForeignKey(CatalogTable, on_delete=models.CASCADE, related_name="columns")
    name = models.CharField(max_length=255)
    position = models.PositiveIntegerField()
    data_type = models.CharField(max_length=255)
    nullable = models.BooleanField(default=True)
    is_primary_key = models.BooleanField(default=False)
    references = models.CharField(
        max_length=600, blank=True, help_text="schema.table.column this column is a foreign key to"
    )
    comment = models.TextField(blank=True)
    samples = models.JSONField(default=list, blank=True)

    class Meta:
        ordering = ["table", "position"]

    def __str__(self) -> str:
        return self.name


class QueryStatus(models.TextChoices):
    OK = "ok", "Succeeded"
    ERROR = "error", "Failed"
    REFUSED = "refused", "Refused"
    CANCELLED = "cancelled", "Cancelled"


class QueryRun(models.Model):
    """One statement a person ran in the SQL runner: their history, and what was refused."""

    org = models.ForeignKey("accounts.Organization", on_delete=models.CASCADE, related_name="+")
    connection = models.ForeignKey(Connection, on_delete=models.CASCADE, related_name="runs")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, related_name="+")
    sql = models.TextField()
    status = models.CharField(max_length=10, choices=QueryStatus.choices)
    error = models.TextField(blank=True)
    row_count = models.PositiveIntegerField(null=True, blank=True)
    truncated = models.BooleanField(default=False)
    elapsed_ms = models.PositiveIntegerField(null=True, blank=True)
    created_at = models.DateTimeField(default=now, db_index=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["user", "connection", "-created_at"])]

    def __str__(self) -> str:
        return self.sql[:60]


class ExportFormat(models.TextChoices):
    CSV = "csv", "CSV"
    XLSX = "xlsx", "Excel (XLSX)"


class ExportStatus(models.TextChoices):
    PENDING = "pending", "Waiting"
    RUNNING = "running", "Running"
    READY = "ready", "Ready"
    FAILED = "failed", "Failed"


class ExportJob(models.Model):
    """A large export written by a worker to a file, downloaded when ready."""

    org = models.ForeignKey("accounts.Organization", on_delete=models.CASCADE, related_name="+")
    connection = models.ForeignKey(Connection, on_delete=models.CASCADE, related_name="exports")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, related_name="+")
    sql = models.TextField()
    format = models.CharField(max_length=4, choices=ExportFormat.choices)
    status = models.CharField(max_length=10, choices=ExportStatus.choices, default=ExportStatus.PENDING)
    rows_written = models.PositiveBigIntegerField(default=0)
    capped = models.BooleanField(default=False)
    file_name = models.CharField(max_length=255, blank=True)
    error = models.TextField(blank=True)
    created_at = models.DateTimeField(default=now)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.get_format_display()} export of {self.connection}"
