from django.urls import path

from apps.connections import apis, views

app_name = "connections"

urlpatterns = [
    path("", views.index, name="index"),
    path("new/", views.connection_create, name="connection-create"),
    path("<int:pk>/", views.connection_detail, name="connection-detail"),
    path("<int:pk>/edit/", views.connection_edit, name="connection-edit"),
    path("<int:pk>/delete/", views.connection_delete, name="connection-delete"),
    path("<int:pk>/test/", views.connection_test, name="connection-test"),
    path("<int:pk>/schema/", views.schema_browser, name="schema-browser"),
    path("<int:pk>/schema/refresh/", views.schema_refresh, name="schema-refresh"),
    path("<int:pk>/schema/exclude/", views.column_exclude, name="column-exclude"),
    path("<int:pk>/sql/", views.sql_runner, name="sql-runner"),
    path("<int:pk>/sql/run/", views.sql_run, name="sql-run"),
    path("<int:pk>/export/", views.export_download, name="export-download"),
    path("<int:pk>/exports/", views.export_start, name="export-start"),
    path("exports/<int:pk>/", views.export_status, name="export-status"),
    path("exports/<int:pk>/file/", views.export_file, name="export-file"),
]

api_urlpatterns = [
    path("connections/", apis.ConnectionListApi.as_view(), name="connection-list"),
    path("connections/<int:pk>/", apis.ConnectionDetailApi.as_view(), name="connection-detail"),
    path("connections/<int:pk>/test/", apis.ConnectionTestApi.as_view(), name="connection-test"),
    path("connections/<int:pk>/schema/", apis.ConnectionSchemaApi.as_view(), name="connection-schema"),
    path(
        "connections/<int:pk>/refresh-schema/",
        apis.ConnectionRefreshSchemaApi.as_view(),
        name="connection-refresh-schema",
    ),
    path("connections/<int:pk>/query/", apis.ConnectionQueryApi.as_view(), name="connection-query"),
    path("connections/<int:pk>/export/", apis.ConnectionExportApi.as_view(), name="connection-export"),
    path("exports/<int:pk>/", apis.ExportJobApi.as_view(), name="export-detail"),
]
