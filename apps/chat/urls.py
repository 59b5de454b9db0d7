from django.urls import path

from apps.chat import apis, views

app_name = "chat"

urlpatterns = [
    path("", views.index, name="index"),
    path("sessions/search/", views.session_search, name="session-search"),
    path("sessions/new/", views.session_create, name="session-create"),
    path("<int:pk>/", views.session_detail, name="session-detail"),
    path("<int:pk>/rename/", views.session_rename, name="session-rename"),
    path("<int:pk>/delete/", views.session_delete, name="session-delete"),
    path("<int:pk>/ask/", views.ask, name="ask"),
    path("answers/<int:pk>/rows/", views.message_rows, name="message-rows"),
    path("answers/<int:pk>/feedback/", views.message_feedback, name="message-feedback"),
    path("assets/vega-<str:version>.js", views.vega_bundle, name="vega-bundle"),
    path("settings/llm/", views.llm_settings, name="llm-settings"),
    path("settings/llm/test/", views.llm_settings_test, name="llm-settings-test"),
]

api_urlpatterns = [
    path("chat/ask/", apis.AskApi.as_view(), name="ask"),
    path("chat/sessions/", apis.SessionListApi.as_view(), name="session-list"),
    path("chat/sessions/<int:pk>/messages/", apis.SessionMessagesApi.as_view(), name="session-messages"),
]
