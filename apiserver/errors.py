"""The API's errors: one class per kind, each with its HTTP status, type and stable code."""

from __future__ import annotations

from typing import Any, ClassVar

from qwenstack_core import errors as store_errors


class APIError(Exception):
    """An error rendered as ``{"error": {message, type, code, details?}}``."""

    status: ClassVar[int] = 500
    type: ClassVar[str] = "internal_error"
    default_code: ClassVar[str] = "internal_error"

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        details: list[dict[str, Any]] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.code = code or self.default_code
        self.details = details

    def body(self) -> dict[str, Any]:
        """Return the JSON error body."""
        err: dict[str, Any] = {"message": self.message, "type": self.type, "code": self.code}
        if self.details is not None:
            err["details"] = self.details
        return {"error": err}


class InvalidRequest(APIError):
    """400: the request cannot be understood."""

    status = 400
    type = "invalid_request_error"
    default_code = "invalid_request"


class ValidationFailed(InvalidRequest):
    """400 with per-field details."""

    default_code = "validation_failed"

    def __init__(self, details: list[dict[str, Any]], message: str | None = None) -> None:
        if message is None:
            message = store_errors.summarize_details(details)
        super().__init__(message, details=details)


def invalid_field(name: str, message: str) -> ValidationFailed:
    """Return a 400 for one bad field."""
    return ValidationFailed([{"field": name, "message": message}])


class Unauthorized(APIError):
    """401: missing or wrong API token."""

    status = 401
    type = "authentication_error"
    default_code = "unauthorized"


class Forbidden(APIError):
    """403: origin or host refused."""

    status = 403
    type = "permission_error"
    default_code = "forbidden"


class NotFound(APIError):
    """404: no such resource."""

    status = 404
    type = "not_found_error"
    default_code = "not_found"


class MethodNotAllowed(APIError):
    """405."""

    status = 405
    type = "invalid_request_error"
    default_code = "method_not_allowed"


class Conflict(APIError):
    """409: the write clashes with existing data."""

    status = 409
    type = "conflict_error"
    default_code = "conflict"


class PayloadTooLarge(APIError):
    """413."""

    status = 413
    type = "invalid_request_error"
    default_code = "payload_too_large"


class UnsupportedMediaType(APIError):
    """415."""

    status = 415
    type = "invalid_request_error"
    default_code = "unsupported_media_type"


class ServiceUnavailable(APIError):
    """503: a dependency (such as a child program) is not available."""

    status = 503
    type = "service_unavailable_error"
    default_code = "service_unavailable"


INTERNAL_MESSAGE = "Internal server error"


def internal_error(request_id: str | None) -> dict[str, Any]:
    """Return the generic 500 body: no internals, only the id to find the log line."""
    message = INTERNAL_MESSAGE
    if request_id:
        message += f" (request id {request_id})"
    return {"error": {"message": message, "type": "internal_error", "code": "internal_error"}}


def from_store(exc: store_errors.StoreError) -> APIError:
    """Map one of the store's errors to its HTTP error (404, 409, 400, 503), keeping its code."""
    if isinstance(exc, store_errors.NotFound):
        return NotFound(exc.message, code=exc.code)
    if isinstance(exc, store_errors.Conflict):
        return Conflict(exc.message, code=exc.code)
    if isinstance(exc, store_errors.Invalid):
        return ValidationFailed(exc.details, exc.message)
    if isinstance(exc, store_errors.StorageUnavailable):
        return ServiceUnavailable(exc.message, code=exc.code)
    return APIError(INTERNAL_MESSAGE)
