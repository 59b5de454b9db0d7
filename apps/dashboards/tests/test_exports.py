import csv
import io

import pytest
from defusedxml import ElementTree as ET
from django.urls import reverse
from PIL import Image

from apps.dashboards.models import WidgetKind
from apps.dashboards.services.charts import IMAGE_HEIGHT, IMAGE_WIDTH, PNG_SCALE
from apps.dashboards.tests.conftest import TOTALS
from apps.dashboards.tests.factories import WidgetFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def viewer(client, personas):
    client.force_login(personas.viewer)
    return client


def test_a_chart_downloads_as_a_real_png(viewer, widget):
    response = viewer.get(reverse("dashboards:widget-chart", args=[widget.pk, "png"]))

    assert response.status_code == 200 and response["Content-Type"] == "image/png"
    assert "sales-by-region.png" in response["Content-Disposition"]
    image = Image.open(io.BytesIO(response.content))
    image.load()
    assert image.format == "PNG"
    # The plot area is the image size; axes and labels add to it.
    assert image.width >= IMAGE_WIDTH * PNG_SCALE and image.height >= IMAGE_HEIGHT * PNG_SCALE
    assert len(image.convert("L").getcolors(maxcolors=65536)) > 10  # drawn, not blank


def test_a_chart_downloads_as_a_real_svg_with_its_categories(viewer, widget):
    response = viewer.get(reverse("dashboards:widget-chart", args=[widget.pk, "svg"]))

    root = ET.fromstring(response.content)
    assert root.tag.endswith("svg") and float(root.get("width")) >= IMAGE_WIDTH
    texts = {element.text for element in root.iter() if element.tag.endswith("text")}
    assert {"Americas", "Asia", "Europe"} <= texts


def test_a_filtered_chart_draws_only_the_filtered_rows(viewer, widget):
    response = viewer.get(reverse("dashboards:widget-chart", args=[widget.pk, "svg"]) + "?f_region=Asia")

    texts = {
        element.text for element in ET.fromstring(response.content).iter() if element.tag.endswith("text")
    }
    assert "Asia" in texts and "Europe" not in texts


def test_a_table_widget_has_no_chart_to_download(viewer, dashboard, shop_connection):
    table = WidgetFactory(dashboard=dashboard, connection=shop_connection, kind=WidgetKind.TABLE, sql=TOTALS)

    response = viewer.get(reverse("dashboards:widget-chart", args=[table.pk, "png"]))

    assert response.status_code == 422 and b"no chart" in response.content


def test_widget_data_downloads_as_csv_with_every_row(viewer, widget):
    response = viewer.get(reverse("dashboards:widget-data", args=[widget.pk, "csv"]) + "?f_region=Europe")

    rows = list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert rows[0] == ["region", "day", "amount"]
    assert len(rows) == 101 and {row[0] for row in rows[1:]} == {"Europe"}
    assert sum(float(row[2]) for row in rows[1:]) == 1303


def test_widget_data_downloads_as_xlsx(viewer, widget):
    from openpyxl import load_workbook

    response = viewer.get(reverse("dashboards:widget-data", args=[widget.pk, "xlsx"]))

    sheet = load_workbook(io.BytesIO(b"".join(response.streaming_content))).active
    assert sheet.max_row == 301 and sheet["A1"].value == "region"


def test_the_whole_dashboard_downloads_as_a_pdf_with_its_charts(viewer, dashboard, widget, shop_connection):
    from pypdf import PdfReader

    WidgetFactory(
        dashboard=dashboard, connection=shop_connection, kind=WidgetKind.TABLE, sql=TOTALS, title="Totals"
    )
    WidgetFactory(dashboard=dashboard, connection=shop_connection, sql="SELECT nope", title="Broken")

    response = viewer.get(reverse("dashboards:dashboard-pdf", args=[dashboard.pk]))

    assert response.status_code == 200 and response["Content-Type"] == "application/pdf"
    reader = PdfReader(io.BytesIO(response.content))
    text = "".join(page.extract_text() for page in reader.pages)
    assert dashboard.title in text and "Sales by region" in text and "Americas" in text
    assert "Broken" in text and "could not load" in text
    images = [image for page in reader.pages for image in page.images]
    assert len(images) == 1 and images[0].image.width >= IMAGE_WIDTH


def test_the_print_page_shows_every_widget_with_server_drawn_charts(viewer, dashboard, widget):
    response = viewer.get(reverse("dashboards:dashboard-print", args=[dashboard.pk]))

    html = response.content.decode()
    assert f'src="{reverse("dashboards:widget-chart", args=[widget.pk, "svg"])}?' in html
    assert "Sales by region" in html
