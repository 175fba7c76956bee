from django.urls import path

app_name = "businesschain-api"
urlpatterns: list = []
