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
