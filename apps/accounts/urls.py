from django.urls import path
from rest_framework_simplejwt.views import TokenRefreshView

from apps.accounts import apis, views

app_name = "accounts"

urlpatterns = [
    path("accounts/signup/", views.signup, name="signup"),
    path("accounts/login/", views.login_view, name="login"),
    path("accounts/logout/", views.logout_view, name="logout"),
    path("accounts/profile/", views.profile, name="profile"),
    path("accounts/password/change/", views.password_change, name="password-change"),
    path("accounts/password/reset/", views.password_reset, name="password-reset"),
    path("accounts/password/reset/sent/", views.password_reset_sent, name="password-reset-sent"),
    path(
        "accounts/password/reset/<uidb64>/<token>/",
        views.password_reset_confirm,
        name="password-reset-confirm",
    ),
    path("accounts/password/reset/done/", views.password_reset_complete, name="password-reset-complete"),
    path("invitations/<str:token>/", views.invitation_accept, name="invitation-accept"),
    path("settings/", views.org_settings, name="org-settings"),
    path("settings/members/", views.member_list, name="member-list"),
    path("settings/members/invite/", views.member_invite, name="member-invite"),
    path("settings/members/<int:pk>/role/", views.member_role, name="member-role"),
    path("settings/members/<int:pk>/deactivate/", views.member_deactivate, name="member-deactivate"),
    path("settings/members/<int:pk>/reactivate/", views.member_reactivate, name="member-reactivate"),
    path("settings/invitations/<int:pk>/revoke/", views.invitation_revoke, name="invitation-revoke"),
    path("settings/api-keys/", views.api_key_list, name="api-key-list"),
    path("settings/api-keys/<int:pk>/revoke/", views.api_key_revoke, name="api-key-revoke"),
    path("audit/", views.audit_log, name="audit-log"),
]

api_urlpatterns = [
    path("auth/token/", apis.TokenObtainApi.as_view(), name="token-obtain"),
    path("auth/token/refresh/", TokenRefreshView.as_view(), name="token-refresh"),
    path("auth/logout/", apis.LogoutApi.as_view(), name="logout"),
    path("me/", apis.MeApi.as_view(), name="me"),
    path("members/", apis.MemberListApi.as_view(), name="member-list"),
    path("api-keys/", apis.ApiKeyListApi.as_view(), name="api-key-list"),
    path("api-keys/<int:pk>/revoke/", apis.ApiKeyRevokeApi.as_view(), name="api-key-revoke"),
]
