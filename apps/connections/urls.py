from django.urls import path

from apps.connections import views

app_name = "connections"

urlpatterns = [
    path("", views.index, name="index"),
]
