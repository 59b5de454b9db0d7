"""The OpenAPI schema class (DEFAULT_SCHEMA_CLASS). Kept apart from `datamind.lib.api`: DRF loads
that module as a setting while its own generic views are still importing, and drf-spectacular's
AutoSchema imports them."""

from drf_spectacular import openapi
from drf_spectacular.utils import OpenApiResponse

from datamind.lib.api import ErrorSerializer


class AutoSchema(openapi.AutoSchema):
    """drf-spectacular's schema, plus the 404 every paginated list answers for a page that does not
    exist (`?page=0`, or past the end): DRF's paginator raises it, so no view can forget it."""

    def _get_response_bodies(self, direction: str = "response") -> dict:
        responses = super()._get_response_bodies(direction)
        if self.method == "GET" and self._get_paginator() and self._is_list_view() and "404" not in responses:
            page_missing = OpenApiResponse(ErrorSerializer, description="No such page of results.")
            responses["404"] = self._get_response_for_code(page_missing, "404", direction=direction)
        return responses
