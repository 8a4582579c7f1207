"""The error answers routes declare in OpenAPI: each one a problem+json with its meaning."""

from __future__ import annotations

from typing import Any

from common.problems import PROBLEM_JSON

Responses = dict[int | str, dict[str, Any]]


def problem_doc(description: str) -> dict[str, Any]:
    """An OpenAPI response of `application/problem+json` meaning `description`."""
    return {
        "description": description,
        "content": {PROBLEM_JSON: {"schema": {"$ref": "#/components/schemas/ProblemDetails"}}},
    }


AUTH_ERRORS: Responses = {
    401: problem_doc(
        "No API key and no signed-in session, an unknown or revoked key, or an ended session."
    ),
    403: problem_doc(
        "The caller's role may not do this, or a signed-in request lacks its CSRF token."
    ),
}
NOT_FOUND: Responses = {404: problem_doc("No alert has this id.")}
INVALID: Responses = {422: problem_doc("A field is invalid; `errors` names each one.")}
# FastAPI's answer to a JSON body it cannot decode (bytes that are not UTF-8; malformed JSON
# text is a 422 naming the body): the gateway's main module adds it where FastAPI reads one
UNREADABLE_BODY: Responses = {400: problem_doc("The body is not text JSON can be read from.")}

# the security scheme of a signed-in session's cookie (the gateway's main module declares it
# next to the API key's, on every route that takes either)
SESSION_SCHEME = "SessionCookie"
# `openapi_extra` of a route a session alone may call
SESSION_ONLY: dict[str, Any] = {"security": [{SESSION_SCHEME: []}]}
