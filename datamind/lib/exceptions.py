from django.db import InterfaceError, OperationalError


class DataMindError(Exception):
    """Base of the project's own errors that are not a user-fixable ValidationError.

    `code` is machine-readable (it becomes the API error body's `code`); `retryable` says whether
    trying again later could succeed (a timeout) or not (a bad password).
    """

    code = "error"
    status = 400
    retryable = False

    def __init__(self, detail: str = "", *, code: str | None = None, retryable: bool | None = None):
        super().__init__(detail)
        self.detail = detail or self.__class__.__doc__ or "Something went wrong."
        if code is not None:
            self.code = code
        if retryable is not None:
            self.retryable = retryable


def database_unavailable(exc: BaseException) -> bool:
    """Whether `exc` says DataMind's own database cannot be reached right now (down, restarting,
    out of connection slots, the pool waited in vain), rather than that it refused a query.

    Errors the server reports carry a SQLSTATE; those meaning "come back later" are connection
    exceptions (08), operator intervention such as a shutdown (57P..) and too many connections.
    A lost connection or a pool timeout has none.
    """
    if isinstance(exc, InterfaceError):
        return True
    if not isinstance(exc, OperationalError):
        return False
    sqlstate = getattr(exc.__cause__, "sqlstate", None)
    return sqlstate is None or sqlstate.startswith(("08", "57P", "53300"))
