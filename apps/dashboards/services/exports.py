"""A dashboard leaving DataMind: chart images, widget data, and the whole dashboard as a PDF.

Images are drawn on the server by vl-convert from the same Vega-Lite spec the page draws, and the
PDF is laid out by fpdf2 from those images: no headless browser anywhere.
"""

import io

from django.core.exceptions import ValidationError
from django.utils import timezone
from fpdf import FPDF

from apps.accounts.models import User
from apps.connections.services.export import ExportDownload, export_stream
from apps.dashboards.models import Dashboard, Widget, WidgetKind
from apps.dashboards.services import charts
from apps.dashboards.services.filters import Filters
from apps.dashboards.services.widgets import WidgetData, dashboard_results, widget_run, widget_sql

IMAGE_TYPES = {"png": "image/png", "svg": "image/svg+xml"}
PDF_TABLE_ROWS = 15
PDF_COLUMNS = 6


def widget_chart_image(
    *, widget: Widget, fmt: str, filters: Filters | None = None, user: User | None = None
) -> bytes:
    """The widget's chart as PNG or SVG; ValidationError when it has no chart to draw."""
    data = widget_run(widget=widget, filters=filters, user=user)
    if data.error:
        raise ValidationError(data.error)
    if data.spec is None:
        raise ValidationError("This widget has no chart to draw.")
    return charts.chart_png(data.spec) if fmt == "png" else charts.chart_svg(data.spec).encode()


def widget_data_download(
    *, widget: Widget, fmt: str, filters: Filters | None = None, user: User | None = None
) -> ExportDownload:
    """Every row of the widget's (filtered) query, through the connections export."""
    if widget.kind == WidgetKind.TEXT or widget.connection is None:
        raise ValidationError("A text widget has no data.")
    return export_stream(
        connection=widget.connection, sql=widget_sql(widget, filters or Filters()), user=user, fmt=fmt
    )


def _latin(text: object) -> str:
    # The PDF's built-in fonts cover Latin-1; anything else becomes "?" rather than failing.
    return str(text).encode("latin-1", "replace").decode("latin-1")


def _pdf_widget(pdf: FPDF, data: WidgetData) -> None:
    widget = data.widget
    pdf.set_font("Helvetica", "B", 12)
    pdf.multi_cell(0, 7, _latin(widget.title), new_x="LMARGIN", new_y="NEXT")
    pdf.set_font("Helvetica", "", 9)
    if data.error:
        pdf.multi_cell(
            0, 5, _latin(f"This widget could not load: {data.error}"), new_x="LMARGIN", new_y="NEXT"
        )
    elif widget.kind == WidgetKind.TEXT:
        pdf.multi_cell(0, 5, _latin(widget.text), new_x="LMARGIN", new_y="NEXT")
    elif widget.kind == WidgetKind.KPI and data.kpi:
        pdf.set_font("Helvetica", "B", 20)
        change = (
            f"  ({data.kpi['change_pct']:+.1f}% vs previous)" if data.kpi["change_pct"] is not None else ""
        )
        pdf.cell(0, 10, _latin(f"{data.kpi['value']:,.2f}{change}"), new_x="LMARGIN", new_y="NEXT")
    elif widget.kind == WidgetKind.CHART and data.spec:
        pdf.image(io.BytesIO(charts.chart_png(data.spec)), w=pdf.epw)
    elif data.columns:
        columns = data.columns[:PDF_COLUMNS]
        with pdf.table(text_align="LEFT", first_row_as_headings=True) as table:
            table.row([_latin(c["name"]) for c in columns])
            for row in data.rows[:PDF_TABLE_ROWS]:
                table.row([_latin("" if v is None else v)[:40] for v in row[: len(columns)]])
    pdf.ln(4)


def dashboard_pdf(*, dashboard: Dashboard, filters: Filters | None = None, user: User | None = None) -> bytes:
    pdf = FPDF(format="A4")
    pdf.set_title(_latin(dashboard.title))
    pdf.set_auto_page_break(auto=True, margin=15)
    pdf.add_page()
    pdf.set_font("Helvetica", "B", 16)
    pdf.multi_cell(0, 9, _latin(dashboard.title), new_x="LMARGIN", new_y="NEXT")
    pdf.set_font("Helvetica", "", 9)
    stamp = timezone.localtime().strftime("%Y-%m-%d %H:%M %Z")
    described = f"Filters: {filters.querystring()}" if filters and filters.active else "No filters"
    pdf.multi_cell(
        0, 5, _latin(f"{dashboard.org.name} - {stamp} - {described}"), new_x="LMARGIN", new_y="NEXT"
    )
    pdf.ln(4)
    for data in dashboard_results(dashboard=dashboard, filters=filters, user=user):
        _pdf_widget(pdf, data)
    return bytes(pdf.output())
