"""Refusals in OpenAI's error shape, so every OpenAI client raises its own exception types.

    {"error": {"message": "...", "type": "...", "param": null, "code": "..."}}

| status | when                                                   | openai SDK raises        |
|--------|--------------------------------------------------------|--------------------------|
| 400    | unreadable body; a request above the per-request cap   | BadRequestError          |
| 401    | missing or unknown key; the key's account is gone       | AuthenticationError      |
| 402    | INSUFFICIENT_CREDITS                                   | APIStatusError           |
| 403    | model outside the key's or the plan's allowed models   | PermissionDeniedError    |
| 404    | no route or no price for the model                     | NotFoundError            |
| 429    | LIMIT_EXCEEDED (day/month windows), RATE_LIMITED       | RateLimitError           |
| 502    | every route failed                                     | InternalServerError      |
| 503    | EMERGENCY_STOP, ACCOUNT_SUSPENDED                      | InternalServerError      |
| 504    | the last route timed out                               | InternalServerError      |

429s carry `Retry-After` in whole seconds: the rate limiter's wait, or the time until the
limit's day or month window starts over.
"""

from __future__ import annotations

from collections.abc import Mapping

from starlette.responses import JSONResponse

from tollgate import errors
from tollgate.limits.rules import MAX_TOKENS_PER_REQUEST
from tollgate.metering.results import Denied


def error(
    status: int,
    message: str,
    *,
    type: str,
    code: str | None = None,
    param: str | None = None,
    headers: Mapping[str, str] | None = None,
) -> JSONResponse:
    body = {"error": {"message": message, "type": type, "param": param, "code": code}}
    return JSONResponse(body, status_code=status, headers=dict(headers or {}))


def invalid_request(message: str, param: str | None = None) -> JSONResponse:
    return error(400, message, type="invalid_request_error", code="invalid_request", param=param)


def unauthenticated(message: str, code: str = "invalid_api_key") -> JSONResponse:
    return error(401, message, type="invalid_request_error", code=code)


def model_not_allowed(model: str) -> JSONResponse:
    return error(
        403,
        f"this key may not use the model {model!r}",
        type="permission_error",
        code="model_not_allowed",
        param="model",
    )


def unknown_model(model: str) -> JSONResponse:
    return error(
        404,
        f"the model {model!r} does not exist or is not served here",
        type="invalid_request_error",
        code="model_not_found",
        param="model",
    )


def upstream_failed(status: int, message: str) -> JSONResponse:
    code = "upstream_timeout" if status == 504 else "upstream_error"
    return error(status, message, type="upstream_error", code=code)


def key_rate_limited(per_minute: int, wait_seconds: float) -> JSONResponse:
    return error(
        429,
        f"this key allows {per_minute} requests per minute",
        type="rate_limit_error",
        code="rate_limit_exceeded",
        param="rpmLimit",
        headers={"Retry-After": str(max(1, int(wait_seconds + 0.999)))},
    )


def refusal(
    result: Denied | errors.ValidationFailed | errors.AccountNotFound | errors.UnknownModel,
    model: str,
    retry_after_seconds: int | None = None,
) -> JSONResponse:
    """The answer to an authorization that did not hold credits."""
    if isinstance(result, errors.ValidationFailed):
        return invalid_request(result.message, result.field)
    if isinstance(result, errors.AccountNotFound):
        return unauthenticated("the account of this key no longer exists", "account_not_found")
    if isinstance(result, errors.UnknownModel):
        return unknown_model(model)
    reason = result.reason
    if reason == "INSUFFICIENT_CREDITS":
        return error(402, result.message, type="insufficient_quota", code="insufficient_credits")
    if reason == "MODEL_NOT_ALLOWED":
        return error(
            403, result.message, type="permission_error", code="model_not_allowed", param="model"
        )
    if reason == "LIMIT_EXCEEDED" and result.limit == MAX_TOKENS_PER_REQUEST:
        # Waiting never helps a request larger than one request may be: it is the caller's to
        # shrink, so no 429 that clients would retry.
        return error(
            400,
            result.message,
            type="invalid_request_error",
            code="max_tokens_per_request",
            param="max_tokens",
        )
    if reason in ("LIMIT_EXCEEDED", "RATE_LIMITED"):
        wait = max(1, retry_after_seconds or result.retry_after_seconds or 60)
        return error(
            429,
            result.message,
            type="rate_limit_error",
            code="rate_limit_exceeded" if reason == "RATE_LIMITED" else "limit_exceeded",
            param=result.limit,
            headers={"Retry-After": str(wait)},
        )
    if reason in ("EMERGENCY_STOP", "ACCOUNT_SUSPENDED"):
        return error(503, result.message, type="service_unavailable", code=reason.lower())
    return error(403, result.message, type="permission_error", code=reason.lower())
