import pytest
from pydantic import ValidationError

from common.config import CommonSettings


def test_placeholder_secret_is_refused_outside_development(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ALLIM_ENVIRONMENT", "production")
    monkeypatch.setenv("ALLIM_TRACKING_SECRET", "change-me")
    with pytest.raises(ValidationError, match="ALLIM_TRACKING_SECRET"):
        CommonSettings()


def test_placeholder_secret_is_allowed_in_development(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ALLIM_ENVIRONMENT", "development")
    monkeypatch.setenv("ALLIM_TRACKING_SECRET", "change-me")
    assert CommonSettings().tracking_secret.get_secret_value() == "change-me"


def test_real_secret_is_accepted_in_production(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ALLIM_ENVIRONMENT", "production")
    monkeypatch.setenv("ALLIM_TRACKING_SECRET", "a-real-secret-of-enough-length")
    assert CommonSettings().environment == "production"
