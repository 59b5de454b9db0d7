from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils.cache import patch_vary_headers


def render_page_or_partial(
    request: HttpRequest, template: str, context: dict, *, partial: str, status: int = 200
) -> HttpResponse:
    """The whole page, or only the named partial of it for a (non-boosted) htmx request."""
    is_fragment = bool(getattr(request, "htmx", False)) and not request.htmx.boosted
    response = render(request, f"{template}#{partial}" if is_fragment else template, context, status=status)
    patch_vary_headers(response, ("HX-Request",))
    return response
