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
