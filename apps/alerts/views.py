from django.contrib.auth.decorators import login_required
from django.http import HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from datamind.lib.types import AuthenticatedRequest


@require_GET
@login_required
def index(request: AuthenticatedRequest) -> HttpResponse:
    return render(request, "alerts/index.html", {})
