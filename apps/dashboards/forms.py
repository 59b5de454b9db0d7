from typing import Any

from django import forms

from apps.connections.models import Connection
from apps.dashboards.models import AttachmentFormat, Dashboard, Widget, WidgetKind
from apps.dashboards.services.charts import AGGREGATES, MARKS
from apps.dashboards.services.filters import DATE_KEY
from apps.dashboards.services.schedule import DAILY, WEEKLY

MARK_CHOICES = [(mark, mark.title() if mark != "arc" else "Pie") for mark in MARKS]
AGGREGATE_CHOICES = [(a, a.title() if a else "None (as returned)") for a in AGGREGATES]
WIDTH_CHOICES = [(w, f"{w}/12") for w in Widget.WIDTHS]
HEIGHT_CHOICES = [(h, f"{h} row{'s' if h > 1 else ''}") for h in Widget.HEIGHTS]


class FilterFieldsField(forms.CharField):
    """Value filters typed as "region: Region, country": a key and an optional label each."""

    def prepare_value(self, value: Any) -> str:
        if isinstance(value, list):
            return ", ".join(
                f"{f['key']}: {f['label']}" if f["label"] != f["key"] else f["key"] for f in value
            )
        return value or ""

    def to_python(self, value: Any) -> list[dict]:
        fields = []
        for part in (value or "").split(","):
            if part.strip():
                key, _, label = part.partition(":")
                fields.append({"key": key.strip(), "label": label.strip() or key.strip()})
        return fields


class DashboardForm(forms.ModelForm):
    filter_fields = FilterFieldsField(
        required=False,
        help_text=(
            "Value filters offered above the widgets, e.g. “region: Region, country”. "
            "A date range is always offered."
        ),
    )

    class Meta:
        model = Dashboard
        fields = ["title", "description", "visibility", "filter_fields", "auto_refresh_s", "schedule_minutes"]
        labels = {
            "auto_refresh_s": "Auto-refresh while open (seconds)",
            "schedule_minutes": "Background refresh (minutes)",
        }
        widgets = {"description": forms.Textarea(attrs={"rows": 2})}


class PinForm(forms.Form):
    dashboard = forms.ModelChoiceField(
        queryset=Dashboard.objects.none(), required=False, empty_label="A new dashboard…"
    )
    new_dashboard_title = forms.CharField(max_length=200, required=False, label="New dashboard's title")
    title = forms.CharField(max_length=200)
    kind = forms.ChoiceField(
        choices=[c for c in WidgetKind.choices if c[0] != WidgetKind.TEXT], initial=WidgetKind.CHART
    )
    mark = forms.ChoiceField(
        choices=[("", "As the answer drew it"), *MARK_CHOICES], label="Chart type", required=False
    )
    connection = forms.IntegerField(widget=forms.HiddenInput, required=False)
    message = forms.IntegerField(widget=forms.HiddenInput, required=False)
    sql = forms.CharField(widget=forms.HiddenInput, required=False)

    def __init__(self, *args: Any, dashboards, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["dashboard"].queryset = dashboards


COLUMNS_DATALIST_ID = "widget-columns"


class WidgetForm(forms.Form):
    """A widget's settings; `fields_for_service()` turns them into the widget's fields."""

    title = forms.CharField(max_length=200)
    kind = forms.ChoiceField(choices=WidgetKind.choices)
    connection = forms.ModelChoiceField(queryset=Connection.objects.none(), required=False)
    sql = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 8, "spellcheck": "false", "class": "sql-input"}),
        required=False,
        label="SQL",
    )
    text = forms.CharField(widget=forms.Textarea(attrs={"rows": 3}), required=False)
    mark = forms.ChoiceField(choices=MARK_CHOICES, label="Chart type", required=False)
    x = forms.CharField(max_length=200, required=False, label="X (category or time column)")
    y = forms.CharField(max_length=200, required=False, label="Y (measure column)")
    color = forms.CharField(max_length=200, required=False, label="Colour (optional column)")
    aggregate = forms.ChoiceField(choices=AGGREGATE_CHOICES, required=False, label="Aggregation of Y")
    date_column = forms.CharField(max_length=200, required=False, label="Column the date range filters")
    width = forms.TypedChoiceField(choices=WIDTH_CHOICES, coerce=int, initial=6)
    height = forms.TypedChoiceField(choices=HEIGHT_CHOICES, coerce=int, initial=1)
    refresh_interval_s = forms.IntegerField(
        min_value=0, initial=0, label="Reload every (seconds, 0: the dashboard's)"
    )

    def __init__(self, *args: Any, filter_fields: list[dict], connections=None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["connection"].queryset = (
            connections if connections is not None else Connection.objects.none()
        )
        self.filter_keys = [f["key"] for f in filter_fields]
        for field in filter_fields:
            self.fields[f"filter_{field['key']}"] = forms.CharField(
                max_length=200, required=False, label=f"Column the “{field['label']}” filter matches"
            )
        # Column fields suggest the result's columns (a datalist filled from the last run, then
        # from each preview) and still take any name, for a query that has not run yet.
        for name in ("x", "y", "color", "date_column", *(f"filter_{key}" for key in self.filter_keys)):
            self.fields[name].widget.attrs["list"] = COLUMNS_DATALIST_ID

    @classmethod
    def initial_for(cls, widget: Widget) -> dict[str, Any]:
        columns = widget.filter_columns or {}
        return {
            "title": widget.title, "kind": widget.kind, "connection": widget.connection_id, "sql": widget.sql,
            "text": widget.text,
            **{k: (widget.chart or {}).get(k, "") for k in ("mark", "x", "y", "color", "aggregate")},
            "date_column": columns.get(DATE_KEY, ""), "width": widget.width, "height": widget.height,
            "refresh_interval_s": widget.refresh_interval_s,
            **{f"filter_{key}": value for key, value in columns.items() if key != DATE_KEY},
        }  # fmt: skip

    def fields_for_service(self) -> dict[str, Any]:
        data = self.cleaned_data
        columns = {DATE_KEY: data["date_column"]} | {k: data.get(f"filter_{k}", "") for k in self.filter_keys}
        kept = {"connection": data["connection"]} if data.get("connection") else {}
        return kept | {
            "title": data["title"], "kind": data["kind"], "sql": data["sql"], "text": data["text"],
            "chart": {k: data.get(k) or "" for k in ("mark", "x", "y", "color", "aggregate")},
            "filter_columns": {k: v.strip() for k, v in columns.items() if v and v.strip()},
            "width": data["width"], "height": data["height"],
            "refresh_interval_s": data["refresh_interval_s"],
        }  # fmt: skip


class LayoutForm(forms.Form):
    offset = forms.IntegerField(required=False, min_value=-100, max_value=100)
    width = forms.TypedChoiceField(choices=WIDTH_CHOICES, coerce=int, required=False, empty_value=None)
    height = forms.TypedChoiceField(choices=HEIGHT_CHOICES, coerce=int, required=False, empty_value=None)
    order = forms.CharField(required=False)
    q = forms.CharField(required=False)

    def clean_order(self) -> list[int]:
        try:
            return [int(pk) for pk in self.cleaned_data["order"].split(",") if pk.strip()]
        except ValueError:
            raise forms.ValidationError("Send widget ids separated by commas.")


class SubscriptionForm(forms.Form):
    FREQUENCIES = [("daily", "Every day"), ("weekly", "Every week"), ("cron", "Custom (cron)")]
    WEEKDAYS = [
        (1, "Monday"),
        (2, "Tuesday"),
        (3, "Wednesday"),
        (4, "Thursday"),
        (5, "Friday"),
        (6, "Saturday"),
        (0, "Sunday"),
    ]

    frequency = forms.ChoiceField(choices=FREQUENCIES, initial="daily")
    time = forms.TimeField(initial="08:00", help_text="In your organisation's time zone.", required=False)
    weekday = forms.TypedChoiceField(choices=WEEKDAYS, coerce=int, initial=1, required=False)
    cron = forms.CharField(
        max_length=100, required=False, help_text="minute hour day-of-month month day-of-week, e.g. 0 8 1 * *"
    )
    recipients = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text=(
            "Members of your organisation, or addresses an admin has allowed; "
            "one per line or comma-separated."
        ),
    )
    attachment_format = forms.ChoiceField(choices=AttachmentFormat.choices, label="Data as")
    skip_on_failure = forms.BooleanField(required=False, label="Skip the e-mail when a widget fails")

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        frequency, time = data.get("frequency"), data.get("time")
        if frequency == "cron":
            if not data.get("cron"):
                self.add_error("cron", "Write the schedule.")
            return data
        if time is None:
            self.add_error("time", "Choose a time.")
            return data
        template = WEEKLY if frequency == "weekly" else DAILY
        data["cron"] = template.format(minute=time.minute, hour=time.hour, weekday=data.get("weekday") or 0)
        return data

    def fields_for_service(self) -> dict[str, Any]:
        data = self.cleaned_data
        return {
            "cron": data["cron"],
            "recipients": [a for a in data["recipients"].replace(",", "\n").splitlines() if a.strip()],
            "attachment_format": data["attachment_format"],
            "skip_on_failure": data["skip_on_failure"],
        }
