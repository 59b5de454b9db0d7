# replaced by the real implementation
from rest_framework.views import APIView as TokenObtainApi
from rest_framework.views import APIView as LogoutApi
from rest_framework.views import APIView as MeApi
from rest_framework.views import APIView as MemberListApi
