"""What the object store's errors mean to zipserve: a refusal before the first byte, a cut after it."""

from __future__ import annotations

import logging

from zipserve.errors import BadGateway, Forbidden, NotFound, Unavailable, ZipserveError

log = logging.getLogger("zipserve.s3")

RETRYABLE_CODES = {"SlowDown", "ServiceUnavailable", "RequestTimeout", "Throttling",
                   "ThrottlingException", "RequestLimitExceeded", "503"}
CREDENTIAL_CODES = {"InvalidAccessKeyId", "SignatureDoesNotMatch", "ExpiredToken",
                    "InvalidToken", "TokenRefreshRequired", "AuthorizationHeaderMalformed"}


def code(exc: Exception) -> str:
    """Given a boto3 error, return the store's error code ("" when it is no store answer)."""
    response = getattr(exc, "response", None) or {}
    return str(response.get("Error", {}).get("Code", ""))


def is_missing(exc: Exception) -> bool:
    return code(exc) in ("NoSuchKey", "NotFound", "404")


def refusal(exc: Exception, shown: str) -> ZipserveError:
    """Given a boto3 error met before the first byte, return the refusal it means (404, 403, 502 or 503).

    botocore's standard retry mode has already retried what is transient
    (throttling, 5xx, resets, refused connections) with backoff: what comes
    here is what is left once those attempts are spent.
    """
    from botocore.exceptions import (  # type: ignore[import-untyped]
        ClientError,
        ConnectionError,
        HTTPClientError,
        NoCredentialsError,
    )

    if isinstance(exc, NoCredentialsError):
        return BadGateway("no credentials for the object store (set AWS_ACCESS_KEY_ID or a profile)")
    if isinstance(exc, (ConnectionError, HTTPClientError)):  # refused, timeouts, DNS, resets
        log.warning("object store unreachable: %s", exc)
        return Unavailable(f"the object store is unreachable ({type(exc).__name__});"
                           " try again shortly")
    if not isinstance(exc, ClientError):
        log.warning("object store request failed: %r", exc)
        return BadGateway(f"the object store request failed ({type(exc).__name__})")
    found = code(exc)
    if is_missing(exc):
        return NotFound(f"no such file or folder: {shown}", path=shown)
    if found in ("AccessDenied", "403", "AllAccessDisabled"):
        return Forbidden(f"the object store denies access to {shown or 'the served prefix'}",
                         path=shown)
    if found in RETRYABLE_CODES:
        return Unavailable(f"the object store is busy ({found}); try again shortly")
    if found == "NoSuchBucket":
        return BadGateway("the served bucket does not exist")
    if found in CREDENTIAL_CODES:
        return BadGateway(f"the object store refused zipserve's credentials ({found})")
    log.warning("object store error for %s: %s", shown, exc)
    return BadGateway(f"the object store answered an error ({found or 'unknown'})")

