"""The isolation matrix: every route that takes an object id, asked for another organisation's
object by every role through every door, must answer exactly as it answers for an id that does
not exist, and that answer must be a 404 or a refusal that does not depend on the object (403 for
the role, 405 for the method). Never 200, never 500, never a difference that confirms the object
exists. And every write route refuses the roles below the one it declares.

Routes are discovered, not listed: the HTML routes from Django's URL resolver, the API routes
from the OpenAPI schema. What an id names, and how to make one, is in `datamind/tests/isolation.py`.
"""

import re
from dataclasses import dataclass, field
from types import SimpleNamespace

import pytest
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver, resolve
from django.urls.resolvers import RegexPattern
from drf_spectacular.generators import SchemaGenerator
from rest_framework.test import APIClient
from rest_framework_simplejwt.tokens import RefreshToken

from apps.accounts import services as account_services
from apps.accounts.models import Role, User
from datamind.lib.testing import Personas
from datamind.tests.isolation import VIEWER_MAY_WRITE, make_object, parameter_kind

ROLES = ("admin", "analyst", "viewer")
WRITE_METHODS = {"post", "put", "patch", "delete"}
# An id no object has: the baseline a foreign object must be indistinguishable from.
MISSING_ID = 2_147_483_000
# Excluded from the HTML walk, with the reason: the API has its own walk (from the schema); the
# Django admin scopes by org in `datamind/lib/admin.py`, tested in apps/accounts/tests/test_admin.py.
EXCLUDED_PREFIXES = {"api/": "walked from the OpenAPI schema", "admin/": "OrgScopedAdmin has its own tests"}
_PARAMETER = re.compile(r"<(?:\w+:)?(\w+)>|\{(\w+)\}")


@dataclass
class Route:
    path: str  # with <param> (Django) or {param} (OpenAPI) placeholders
    name: str
    methods: list[str]
    parameters: list[tuple[str, str | None]] = field(default_factory=list)  # (name, kind)
    # Values for parameters that are not object ids (a format from a regex or an enum).
    fixed: dict[str, str] = field(default_factory=dict)

    @property
    def is_api(self) -> bool:
        return self.path.startswith("/api/")

    def url(self, values: dict[str, object]) -> str:
        values = {**dict.fromkeys((n for n, k in self.parameters if k is None), "x"), **self.fixed, **values}
        return _PARAMETER.sub(lambda m: str(values[m.group(1) or m.group(2)]), self.path)


def _parameters(path: str) -> list[tuple[str, str | None]]:
    found = []
    for match in _PARAMETER.finditer(path):
        name = match.group(1) or match.group(2)
        before = path[: match.start()].rstrip("/").rsplit("/", 1)[-1]
        found.append((name, parameter_kind(name, before)))
    return found


_REGEX_GROUP = re.compile(r"\(\?P<(\w+)>([^)]*)\)")


def _as_template(pattern: object) -> tuple[str, dict[str, str]]:
    """A path() pattern as is; a re_path() pattern as a template with <name> placeholders, plus a
    sample value for each group that is a choice of words (`(?P<fmt>png|svg)` -> "png")."""
    if not isinstance(pattern, RegexPattern):
        return str(pattern), {}
    regex = str(pattern).removeprefix("^").removesuffix("$")
    fixed = {
        name: body.split("|")[0]
        for name, body in _REGEX_GROUP.findall(regex)
        if re.fullmatch(r"[\w|]+", body)
    }
    return _REGEX_GROUP.sub(lambda m: f"<{m.group(1)}>", regex).replace("\\.", "."), fixed


def _walk(
    patterns: list, prefix: str = "", namespace: str = "", fixed: dict | None = None, skip: bool = True
) -> list[Route]:
    routes = []
    for entry in patterns:
        template, own_fixed = _as_template(entry.pattern)
        route, values = prefix + template, {**(fixed or {}), **own_fixed}
        if skip and any(route.startswith(excluded) for excluded in EXCLUDED_PREFIXES):
            continue
        if isinstance(entry, URLResolver):
            inner = f"{namespace}:{entry.namespace}" if namespace and entry.namespace else entry.namespace
            routes += _walk(entry.url_patterns, route, inner or namespace, values, skip)
        elif isinstance(entry, URLPattern):
            name = f"{namespace}:{entry.name}" if namespace else str(entry.name)
            routes.append(Route("/" + route, name, [], _parameters(route), values))
    return routes


def _allowed_methods(route: Route) -> list[str]:
    """What a page route accepts: the Allow header of Django's method decorators (which answer
    before any log-in or lookup), else GET and POST."""
    response = Client().options(route.url(dict.fromkeys((n for n, k in route.parameters if k), MISSING_ID)))
    allowed = [m.strip().lower() for m in response.get("Allow", "").split(",") if m.strip()]
    methods = [m for m in allowed if m in {"get", "post", "put", "patch", "delete"}]
    return methods or ["get", "post"]


def html_routes() -> list[Route]:
    routes = _walk(get_resolver().url_patterns)
    for route in routes:
        route.methods = _allowed_methods(route)
    return routes


def api_routes() -> list[Route]:
    schema = SchemaGenerator().get_schema(request=None, public=True)
    # Sample values of non-id parameters, from the URL patterns themselves (a re_path's choices).
    # Keyed by the path with its parameters unnamed: the schema calls a `pk` `id`.
    samples = {_PARAMETER.sub("{}", r.path): r.fixed for r in _walk(get_resolver().url_patterns, skip=False)}
    routes = []
    for path, operations in schema["paths"].items():
        methods = [m for m in operations if m in {"get", "put", "patch", "post", "delete"}]
        # A path parameter with an enum (a file format) gets its first value.
        fixed = {
            parameter["name"]: str(parameter["schema"]["enum"][0])
            for operation in operations.values()
            if isinstance(operation, dict)
            for parameter in operation.get("parameters", [])
            if parameter.get("in") == "path" and "enum" in parameter.get("schema", {})
        }
        route = Route(
            path, "", methods, _parameters(path), {**samples.get(_PARAMETER.sub("{}", path), {}), **fixed}
        )
        route.name = resolve(route.url(dict.fromkeys((n for n, k in route.parameters if k), 1))).view_name
        routes.append(route)
    return routes


# Doors: how a persona talks to the app ---------------------------------------------------------------


def session_door(user: User) -> Client:
    client = Client()
    client.force_login(user)
    return client


def jwt_door(user: User) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {RefreshToken.for_user(user).access_token}")
    return client


def api_key_door(user: User) -> APIClient:
    # A key made by the org's admin, capped at this persona's role.
    admin = user if user.is_org_admin else User.objects.get(org=user.org, email__startswith="admin@")
    _api_key, key = account_services.api_key_create(org=user.org, actor=admin, name="Matrix", role=user.role)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Api-Key {key}")
    return client


def send(client: Client, method: str, url: str, api: bool) -> int:
    if api and method != "get":
        return getattr(client, method)(url, {}, content_type="application/json").status_code
    return getattr(client, method)(url).status_code


@pytest.fixture
def report(request):
    """Writes the matrix's counts in pytest's summary, whatever the output capture."""
    plugins = request.config.pluginmanager
    reporter, capture = plugins.get_plugin("terminalreporter"), plugins.get_plugin("capturemanager")
    lines: list[str] = []
    yield lines.append
    if reporter is not None and capture is not None:
        with capture.global_and_fixture_disabled():
            for line in lines:
                reporter.write_line(line)


# The matrix ------------------------------------------------------------------------------------------


def _foreign_id_failures(routes: list[Route], doors: dict, personas: Personas) -> tuple[int, list[str], set]:
    """Ask each id route for the other org's objects, and for missing ids; compare the answers."""
    tried, failures, covered = 0, [], set()
    for role in ROLES:
        me = getattr(personas, role)
        for route in routes:
            kinds = [(name, kind) for name, kind in route.parameters if kind is not None]
            if not kinds:
                continue
            foreign = {
                name: make_object(kind, personas.other_org, personas.outsider, route.path)
                for name, kind in kinds
            }
            foreign |= {name: "x" for name, kind in route.parameters if kind is None}
            missing = {name: MISSING_ID for name, _kind in kinds} | {
                n: "x" for n, k in route.parameters if k is None
            }
            for door_name, door in doors.items():
                client = door(me)
                for method in route.methods:
                    answer = send(client, method, route.url(foreign), route.is_api)
                    baseline = send(client, method, route.url(missing), route.is_api)
                    tried += 1
                    covered.add(route.path)
                    leaked = answer != baseline or answer not in (404, 403, 405)
                    if leaked:
                        failures.append(
                            f"{method.upper()} {route.path} as {role} over {door_name}: other org's object "
                            f"answered {answer}, a missing id {baseline}"
                        )
    return tried, failures, covered


@pytest.mark.django_db
def test_no_route_reveals_another_organisations_objects(personas: Personas, report):
    html = [r for r in html_routes() if r.parameters]
    api = [r for r in api_routes() if r.parameters]

    html_tried, html_failures, html_covered = _foreign_id_failures(html, {"session": session_door}, personas)
    api_doors = {"session": session_door, "JWT": jwt_door, "API key": api_key_door}
    api_tried, api_failures, api_covered = _foreign_id_failures(api, api_doors, personas)

    report(
        f"isolation matrix: {len(html_covered)} page routes + {len(api_covered)} API routes with object ids, "
        f"x 3 roles, 2 orgs; {html_tried + api_tried} requests (each against a missing-id baseline), "
        f"{len(html_failures) + len(api_failures)} leaks"
    )
    assert html_covered and api_covered
    assert html_failures + api_failures == []


# Roles on write routes ----------------------------------------------------------------------------------


def _declared_minimum(route: Route, method: str, personas: Personas) -> Role:
    """The lowest role the route lets through for `method`: role_required's mark on a page view,
    the permission classes of an API view (asked with each persona)."""
    match = resolve(route.url({name: MISSING_ID for name, kind in route.parameters if kind}))
    view_class = getattr(match.func, "cls", None)
    if view_class is None:
        return getattr(match.func, "minimum_role", Role.VIEWER)
    view = view_class()
    for role in ROLES[::-1]:  # viewer, analyst, admin
        request = SimpleNamespace(method=method.upper(), user=getattr(personas, role), auth=None)
        allowed = all(
            p.has_permission(request, view) and p.has_object_permission(request, view, None)
            for p in (permission() for permission in view_class.permission_classes)
        )
        if allowed:
            return Role(role)
    return Role.ADMIN


@pytest.mark.django_db
def test_every_write_route_refuses_the_roles_below_the_one_it_declares(personas: Personas, report):
    refusals, failures = 0, []
    for route in html_routes() + api_routes():
        own = {
            name: make_object(kind, personas.org, personas.admin, route.path)
            for name, kind in route.parameters
            if kind
        }
        for method in route.methods:
            minimum = _declared_minimum(route, method, personas)
            is_write = method in WRITE_METHODS
            if is_write and minimum == Role.VIEWER and route.name not in VIEWER_MAY_WRITE:
                failures.append(
                    f"{method.upper()} {route.path} ({route.name}) lets viewers write: guard it with a role, "
                    "or add it to VIEWER_MAY_WRITE in datamind/tests/isolation.py with the reason"
                )
            for role in ROLES:
                if Role(role).rank >= minimum.rank:
                    continue
                doors = [session_door, jwt_door, api_key_door] if route.is_api else [session_door]
                for door in doors:
                    answer = send(door(getattr(personas, role)), method, route.url(own), route.is_api)
                    refusals += 1
                    if answer not in (403, 405):
                        failures.append(f"{method.upper()} {route.path} as {role}: {answer}, not refused")

    report(f"role matrix: {refusals} requests by roles below a route's minimum, {len(failures)} not refused")
    assert failures == []


def test_a_route_with_an_unknown_kind_of_id_fails_loudly(personas: Personas, db):
    with pytest.raises(LookupError, match=r"OBJECT_FACTORIES\['gadget'\]"):
        make_object("gadget", personas.other_org, personas.outsider, "/gadgets/<int:pk>/")
