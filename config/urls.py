from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from supervision import views as supervision_views

urlpatterns = [
    path("healthz", supervision_views.healthz, name="healthz"),
    path("", supervision_views.dashboard, name="dashboard"),
    path("", include("supervision.urls")),
    path("accounts/login/", auth_views.LoginView.as_view(), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("i18n/", include("django.conf.urls.i18n")),
    path("admin/", admin.site.urls),
    path("api/v1/", include("businesschain.api.urls")),
    path("api/v1/", include("supervision.api.urls")),
    path("api/schema/", SpectacularAPIView.as_view(permission_classes=[]), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema", permission_classes=[]),
         name="api-docs"),
]
