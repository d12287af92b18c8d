"""One exception tree for inferq; foreign errors are translated at the boundary."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from redis.exceptions import RedisError


class InferqError(Exception):
    """Base of every inferq error; ``status`` and ``code`` shape the HTTP answer."""

    status = 500
    code = "internal_error"
    kind = "server_error"

    def __init__(self, message: str, *, param: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.param = param


class InvalidRequest(InferqError):
    """The request is well formed but cannot be served as asked."""

    status = 400
    code = "invalid_request"
    kind = "invalid_request_error"


class ContextLengthExceeded(InvalidRequest):
    """Prompt plus ``max_tokens`` do not fit the model's context window."""

    code = "context_length_exceeded"


class InvalidImage(InvalidRequest):
    """An image part cannot be used: bad data URL, format, size, or content."""

    code = "invalid_image"


class ModelNotFound(InferqError):
    """The model is not in the catalogue."""

    status = 404
    code = "model_not_found"
    kind = "invalid_request_error"


class JobNotFound(InferqError):
    """No such job for this tenant."""

    status = 404
    code = "job_not_found"
    kind = "invalid_request_error"


class BatchNotFound(InferqError):
    """No such batch for this tenant."""

    status = 404
    code = "batch_not_found"
    kind = "invalid_request_error"


class BatchNotCancellable(InferqError):
    """The batch has ended, or is being finalised, and cannot be cancelled."""

    status = 409
    code = "batch_not_cancellable"
    kind = "invalid_request_error"


class QueueFull(InferqError):
    """Queued units for the model are past the ceiling; retry later."""

    status = 429
    code = "queue_full"
    kind = "rate_limit_error"

    def __init__(self, message: str, *, retry_after_s: int) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class ServerError(InferqError):
    """The queue server cannot be reached or misbehaves."""

    status = 503
    code = "queue_unavailable"


class EmbeddedServerError(ServerError):
    """The embedded Valkey server could not be started."""

    code = "embedded_server_failed"


class FileNotFound(InferqError):
    """No such file for this tenant."""

    status = 404
    code = "file_not_found"
    kind = "invalid_request_error"


class FileTooLarge(InferqError):
    """An upload is larger than ``files.max_file_bytes``."""

    status = 413
    code = "file_too_large"
    kind = "invalid_request_error"


class FileMissing(InferqError):
    """The file storage holds no object of that name."""

    status = 404
    code = "file_content_missing"
    kind = "invalid_request_error"


class StorageError(ServerError):
    """The file storage cannot be reached or misbehaves."""

    code = "file_storage_unavailable"


@contextmanager
def translated(context: str) -> Iterator[None]:
    """Turn the queue server's errors (redis-py's, or the socket's) into :class:`ServerError`.

    The queueing package's boundary: callers outside it see only inferq's own errors.
    """
    try:
        yield
    except (RedisError, OSError) as exc:
        raise ServerError(f"{context}: {exc}") from exc
