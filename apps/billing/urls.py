from django.urls import path

from apps.billing import apis, views

app_name = "billing"

urlpatterns = [
    path("", views.index, name="index"),
    path("budget/", views.budget, name="budget"),
    path("ledger.csv", views.ledger_csv, name="ledger-csv"),
]

api_urlpatterns = [
    path("billing/usage/", apis.UsageApi.as_view(), name="usage"),
    path("billing/budget/", apis.BudgetApi.as_view(), name="budget"),
]
