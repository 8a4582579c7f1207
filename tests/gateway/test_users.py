"""Users' pure rules: what each role may do, names, roles and passwords, the argon2 hash,
the sign-in throttle's wait, and the CSRF comparison. No database."""

from __future__ import annotations

import hashlib

import pytest
from pydantic import SecretStr

from common.models import User
from gateway import signin, users
from gateway.config import GatewaySettings
from gateway.users import MAX_NAME, MAX_PASSWORD, MIN_PASSWORD, InvalidUser

PASSWORD = "correct horse battery"

# the table in gateway.users' docstring, one row per role
GRANTS = {
    "viewer": {"read"},
    "operator": {"read", "send"},
    "approver": {"read", "send", "approve", "audit"},
    "admin": {"read", "audit", "manage"},
}


def _settings(**changes: object) -> GatewaySettings:
    return GatewaySettings(
        environment="test",
        tracking_secret=SecretStr("test-tracking-secret-0123456789"),
        **changes,
    )


@pytest.mark.parametrize("role", users.ROLES)
def test_each_role_grants_exactly_its_permissions(role: str) -> None:
    granted = {permission for permission in users.PERMISSIONS if users.may(role, permission)}
    assert granted == GRANTS[role]


def test_an_unknown_role_grants_nothing() -> None:
    assert not any(users.may("root", permission) for permission in users.PERMISSIONS)


def test_check_role_accepts_the_four_roles_and_names_them_when_refusing() -> None:
    assert [users.check_role(role) for role in GRANTS] == list(users.ROLES)
    with pytest.raises(
        InvalidUser, match="'Admin' is not one of viewer, operator, approver, admin"
    ):
        users.check_role("Admin")


def test_check_name_strips_and_bounds_the_length() -> None:
    assert users.check_name("  김민지  ") == "김민지"
    assert users.check_name("x" * MAX_NAME) == "x" * MAX_NAME
    for bad in ("", "   ", "x" * (MAX_NAME + 1)):
        with pytest.raises(InvalidUser, match=f"1 to {MAX_NAME} characters"):
            users.check_name(bad)


def test_a_password_between_the_bounds_is_hashed_with_argon2id() -> None:
    for password in ("p" * MIN_PASSWORD, "p" * MAX_PASSWORD, PASSWORD):
        hashed = users.hash_password(password)
        assert hashed.startswith("$argon2id$")
        assert password not in hashed


@pytest.mark.parametrize("length", [0, MIN_PASSWORD - 1, MAX_PASSWORD + 1])
def test_a_password_too_short_or_too_long_is_refused_with_its_length(length: int) -> None:
    with pytest.raises(InvalidUser, match=f"{MIN_PASSWORD} to {MAX_PASSWORD} characters; "):
        users.hash_password("p" * length)
    with pytest.raises(InvalidUser, match=f"this one has {length}"):
        users.hash_password("p" * length)


def test_a_password_of_only_spaces_is_refused() -> None:
    with pytest.raises(InvalidUser, match="only spaces"):
        users.hash_password(" " * MIN_PASSWORD)


def test_the_same_password_hashes_differently_each_time() -> None:
    # a salt per hash: two users with one password do not share a hash
    assert users.hash_password(PASSWORD) != users.hash_password(PASSWORD)


def test_the_hash_verifies_the_password_and_nothing_else() -> None:
    hashed = users.hash_password(PASSWORD)
    assert users.password_matches(hashed, PASSWORD)
    for wrong in ("correct horse battery ", "Correct horse battery", "", "x" * MAX_PASSWORD):
        assert not users.password_matches(hashed, wrong)


def test_a_user_without_a_password_or_with_a_broken_hash_never_matches() -> None:
    # also not with the decoy's own password, which an unknown name is checked against
    for password in (PASSWORD, "allim: no such user", ""):
        assert not users.password_matches(None, password)
        assert not users.password_matches("not an argon2 hash", password)


def test_disable_stamps_the_user_once() -> None:
    user = User(name="someone", role="operator")
    assert users.disable(user)
    first = user.disabled_at
    assert first is not None
    assert not users.disable(user)
    assert user.disabled_at == first


def test_no_wait_below_the_slow_threshold() -> None:
    settings = _settings(gateway_signin_slow_after=3, gateway_signin_slow_seconds=2.0)
    assert [signin.slow_wait(failed, settings) for failed in range(3)] == [0.0, 0.0, 0.0]


def test_the_wait_doubles_with_each_wrong_password_past_the_threshold() -> None:
    settings = _settings(gateway_signin_slow_after=3, gateway_signin_slow_seconds=2.0)
    waits = [signin.slow_wait(failed, settings) for failed in range(3, 8)]
    assert waits == [2.0, 4.0, 8.0, 16.0, 32.0]


def test_the_wait_stops_growing_after_twenty_doublings() -> None:
    settings = _settings(gateway_signin_slow_after=1, gateway_signin_slow_seconds=0.5)
    assert signin.slow_wait(21, settings) == 0.5 * 2**20
    assert signin.slow_wait(10_000, settings) == 0.5 * 2**20


def test_a_session_row_is_keyed_by_the_sha256_of_its_cookie() -> None:
    token = "a-cookie-token"
    assert signin.session_id(token) == hashlib.sha256(token.encode()).hexdigest()
    assert token not in signin.session_id(token)


def test_csrf_matches_only_the_same_token() -> None:
    assert signin.csrf_matches("token-1", "token-1")
    assert not signin.csrf_matches("token-1", "token-2")
    assert not signin.csrf_matches("token-1", "")
    assert not signin.csrf_matches("token-1", None)
