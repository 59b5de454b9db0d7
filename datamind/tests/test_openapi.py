import json
import re
from pathlib import Path

import pytest
from django.contrib.staticfiles import finders
from django.core.management import call_command
from django.test import Client
from drf_spectacular.generators import SchemaGenerator
from drf_spectacular.validation import validate_schema


@pytest.fixture(scope="module")
def schema() -> dict:
    return SchemaGenerator().get_schema(request=None, public=True)


def test_the_schema_is_a_valid_openapi_3_document(schema: dict):
    validate_schema(schema)

    assert schema["openapi"].startswith("3.")


def test_the_schema_generates_without_a_single_warning(tmp_path: Path):
    # --fail-on-warn turns every "could not resolve" guess into an error.
    call_command("spectacular", "--validate", "--fail-on-warn", "--file", str(tmp_path / "schema.yml"))


def test_the_schema_is_served_as_json_to_anyone(db):
    response = Client().get("/api/schema/", {"format": "json"})

    assert response.status_code == 200
    document = json.loads(response.content)
    validate_schema(document)
    assert "/api/v1/me/" in document["paths"]


def test_every_v1_operation_documents_its_errors_with_the_shared_body(schema: dict):
    for path, operations in schema["paths"].items():
        for method, operation in operations.items():
            errors = {code: r for code, r in operation["responses"].items() if code.startswith("4")}
            assert errors, f"{method.upper()} {path} documents no error"
            for response in errors.values():
                assert response["content"]["application/json"]["schema"] == {
                    "$ref": "#/components/schemas/Error"
                }


def test_every_operation_has_a_summary_and_a_tag(schema: dict):
    for path, operations in schema["paths"].items():
        for method, operation in operations.items():
            assert operation.get("summary"), f"{method.upper()} {path}"
            assert operation.get("tags") != ["v1"], f"{method.upper()} {path} has only the default tag"


def test_the_member_list_is_documented_as_paginated(schema: dict):
    response = schema["paths"]["/api/v1/members/"]["get"]["responses"]["200"]

    assert response["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/PaginatedMemberList"
    }


def test_the_docs_page_renders_with_assets_we_serve_ourselves(db):
    response = Client().get("/api/docs/")

    assert response.status_code == 200
    html = response.text
    assert "SwaggerUIBundle" in html or "swagger-ui" in html
    assert not re.search(r"(src|href)=\"(https?:)?//", html), "an asset is loaded from another host"
    for cdn in ("cdn.jsdelivr.net", "unpkg.com", "cdnjs"):
        assert cdn not in html
    assets = re.findall(r"/static/(drf_spectacular_sidecar/[^\"']+)", html)
    assert assets
    assert all(finders.find(asset) for asset in assets)
