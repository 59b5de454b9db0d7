import pytest
from django.test import Client, override_settings

UNREACHABLE_REDIS = "redis://127.0.0.1:6399/0"


@pytest.fixture
def client(db) -> Client:
    return Client()


def test_it_is_healthy_when_every_component_answers(client: Client):
    response = client.get("/health/")

    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok"
    assert set(body["components"]) == {"database", "cache", "broker"}
    assert all(c["status"] == "ok" for c in body["components"].values())
    assert "no-cache" in response["Cache-Control"]


def test_it_needs_no_login_and_no_session(client: Client):
    response = client.get("/health/")

    assert response.status_code == 200
    assert "sessionid" not in response.cookies


def test_it_is_unhealthy_when_redis_is_unreachable(client: Client):
    redis_cache = {
        "default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": UNREACHABLE_REDIS}
    }
    with override_settings(CACHES=redis_cache, CELERY_BROKER_URL=UNREACHABLE_REDIS):
        response = client.get("/health/")

    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "error"
    assert body["components"]["database"]["status"] == "ok"
    assert body["components"]["cache"] == {"status": "error", "error": "ConnectionError"}
    assert body["components"]["broker"]["status"] == "error"


def test_it_does_not_tell_the_public_why_a_component_failed(client: Client):
    with override_settings(CELERY_BROKER_URL=UNREACHABLE_REDIS):
        response = client.get("/health/")

    assert response.status_code == 503
    assert "6399" not in response.text


def test_it_answers_head_for_probes_that_use_it(client: Client):
    assert client.head("/health/").status_code == 200


def test_it_refuses_post(client: Client):
    assert client.post("/health/").status_code == 405


@override_settings(SECURE_SSL_REDIRECT=True)
def test_it_is_not_redirected_to_https_so_internal_probes_work(client: Client):
    assert client.get("/health/").status_code == 200
    assert client.get("/accounts/login/").status_code == 301
