"""One exception tree: every refusal knows its HTTP status and a stable code."""

from __future__ import annotations


class ZipserveError(Exception):
    """Base of every error zipserve turns into an HTTP answer."""

    status = 500
    code = "internal"

    def __init__(self, message: str, *, path: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.path = path

    def headers(self) -> dict[str, str]:
        """Return extra response headers this error needs."""
        return {}

    def body(self) -> dict[str, dict[str, object]]:
        """Return the JSON error body: {"error": {"code", "message", "path"?}}."""
        error: dict[str, object] = {"code": self.code, "message": self.message}
        if self.path is not None:
            error["path"] = self.path
        return {"error": error}


class BadRequest(ZipserveError):
    status = 400
    code = "bad_request"


class Unauthorized(ZipserveError):
    status = 401
    code = "unauthorized"

    def headers(self) -> dict[str, str]:
        return {"WWW-Authenticate": 'Bearer realm="zipserve"'}


class Forbidden(ZipserveError):
    status = 403
    code = "forbidden"


class NotFound(ZipserveError):
    status = 404
    code = "not_found"


class Missing(NotFound):
    """A manifest's entries (under missing=fail) whose sources are not there, all named at once."""

    code = "missing"

    def __init__(self, message: str, *, missing: list[dict[str, object]]) -> None:
        super().__init__(message)
        self.missing = missing

    def body(self) -> dict[str, dict[str, object]]:
        """Return the JSON error body, with "missing": [{"entry", "name", "source", "why"}, ...]."""
        out = super().body()
        out["error"]["missing"] = self.missing
        return out


class PreconditionFailed(ZipserveError):
    status = 412
    code = "precondition_failed"


class TooLarge(ZipserveError):
    status = 413
    code = "too_large"


class RangeNotSatisfiable(ZipserveError):
    status = 416
    code = "range_not_satisfiable"

    def __init__(self, message: str, *, size: int) -> None:
        super().__init__(message)
        self.size = size

    def headers(self) -> dict[str, str]:
        # RFC 9110 §15.5.17: a 416 names the current length.
        return {"Content-Range": f"bytes */{self.size}"}


class Busy(ZipserveError):
    status = 503
    code = "busy"

    def __init__(self, message: str, *, retry_after: int = 5) -> None:
        super().__init__(message)
        self.retry_after = retry_after

    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(self.retry_after)}


class BadGateway(ZipserveError):
    """The object store answered, but not with what zipserve can serve (credentials, bucket, 5xx)."""

    status = 502
    code = "store_error"


class Unavailable(ZipserveError):
    """The object store could not be reached or asked us to slow down: worth a retry later."""

    status = 503
    code = "store_unavailable"

    def __init__(self, message: str, *, retry_after: int = 5) -> None:
        super().__init__(message)
        self.retry_after = retry_after

    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(self.retry_after)}


class ConfigError(ZipserveError, ValueError):
    """A setting that cannot work: the server or `pack` refuses to start (never raised per request)."""

    status = 500
    code = "config"


class SourceChanged(ZipserveError):
    """A file changed, vanished or became unreadable after the body started.

    Raised inside the body iterator; the HTTP layer aborts the connection so the
    client sees an incomplete transfer, never a whole-looking wrong archive. Its
    status is never sent: the headers are gone by then.
    """

    status = 500
    code = "source_changed"

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(f"{path}: {reason}", path=path)
        self.reason = reason
