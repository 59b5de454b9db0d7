"""The chat API: the same pipeline as the web page, answered as JSON when it is finished."""

from asgiref.sync import async_to_sync
from django.http import Http404
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.chat.models import ChatMessage, ChatSession
from apps.chat.selectors import message_list, session_get, session_list
from apps.chat.services.pipeline import QUESTION_MAX_LENGTH, answer_question
from apps.chat.services.sessions import session_create
from apps.connections.models import Connection
from apps.connections.selectors import connection_get
from datamind.lib.api import Pagination, error_responses, paginated_response
from datamind.lib.permissions import IsAnalyst, IsMember

_TAGS = ["chat"]


class MessageOutputSerializer(serializers.ModelSerializer):
    session = serializers.IntegerField(source="session_id")
    analysis = serializers.CharField(source="content")
    usage = serializers.SerializerMethodField()

    class Meta:
        model = ChatMessage
        ref_name = "ChatMessage"
        fields = [
            "id", "session", "role", "status", "analysis", "explanation", "sql", "attempts", "tables_used",
            "columns", "rows", "row_count", "truncated", "chart", "provider", "model", "usage", "timings",
            "error", "feedback", "created_at",
        ]  # fmt: skip

    def get_usage(self, message: ChatMessage) -> dict[str, int]:
        return {"input_tokens": message.input_tokens, "output_tokens": message.output_tokens}


class SessionOutputSerializer(serializers.ModelSerializer):
    connection = serializers.IntegerField(source="connection_id", allow_null=True)

    class Meta:
        model = ChatSession
        ref_name = "ChatSession"
        fields = ["id", "title", "connection", "created_at", "updated_at"]


def _session_or_404(request: Request, pk: int) -> ChatSession:
    try:
        return session_get(org=request.user.org, user=request.user, pk=pk)
    except ChatSession.DoesNotExist:
        raise Http404 from None


class AskApi(APIView):
    """Ask a question; answers when the whole answer (SQL, rows, chart, analysis) is ready."""

    permission_classes = [IsAnalyst]

    class InputSerializer(serializers.Serializer):
        connection = serializers.IntegerField(required=False, help_text="Required unless `session` is given.")
        question = serializers.CharField(max_length=QUESTION_MAX_LENGTH)
        session = serializers.IntegerField(required=False, help_text="Continue this chat (follow-ups).")

        class Meta:
            ref_name = "ChatAsk"

    @extend_schema(
        tags=_TAGS,
        summary="Ask a question",
        request=InputSerializer,
        responses={200: MessageOutputSerializer, **error_responses(400, 401, 403, 404)},
    )
    def post(self, request: Request) -> Response:
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        if session_id := data.validated_data.get("session"):
            session = _session_or_404(request, session_id)
        elif connection_id := data.validated_data.get("connection"):
            try:
                connection = connection_get(org=request.user.org, pk=connection_id)
            except Connection.DoesNotExist:
                raise Http404 from None
            session = session_create(user=request.user, connection=connection)
        else:
            raise serializers.ValidationError(
                {"connection": ["Give a connection, or a session to continue."]}
            )
        message = async_to_sync(answer_question)(
            session=session, user=request.user, text=data.validated_data["question"]
        )
        return Response(MessageOutputSerializer(message).data, status=status.HTTP_200_OK)


class SessionListApi(APIView):
    """The caller's own chats, newest first."""

    permission_classes = [IsMember]
    pagination_class = Pagination

    @extend_schema(
        tags=_TAGS,
        summary="List my chats",
        responses={200: SessionOutputSerializer(many=True), **error_responses(401)},
    )
    def get(self, request: Request) -> Response:
        sessions = session_list(org=request.user.org, user=request.user)
        return paginated_response(
            queryset=sessions, serializer_class=SessionOutputSerializer, request=request, view=self
        )


class SessionMessagesApi(APIView):
    """The questions and answers of one of the caller's chats, oldest first."""

    permission_classes = [IsMember]
    pagination_class = Pagination

    @extend_schema(
        tags=_TAGS,
        summary="List a chat's questions and answers",
        responses={200: MessageOutputSerializer(many=True), **error_responses(401, 404)},
    )
    def get(self, request: Request, pk: int) -> Response:
        session = _session_or_404(request, pk)
        return paginated_response(
            queryset=message_list(session=session),
            serializer_class=MessageOutputSerializer,
            request=request,
            view=self,
        )
