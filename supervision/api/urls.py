from django.urls import path

app_name = "supervision-api"
urlpatterns: list = []
