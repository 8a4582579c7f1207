import pytest

from cli.main import build_parser, main


def test_unknown_subcommand_is_an_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["no-such-command"])
    assert exc.value.code == 2
    assert "invalid choice" in capsys.readouterr().err


def test_every_subcommand_has_a_handler() -> None:
    parser = build_parser()
    actions = [a for a in parser._actions if a.dest == "command"]
    choices = actions[0].choices
    assert choices is not None
    for name, sub in choices.items():  # type: ignore[union-attr]
        assert sub.get_default("handler") is not None, name


@pytest.mark.parametrize(
    ("command", "variable", "value"),
    [
        (["broadcaster"], "ALLIM_BROADCASTER_MAX_IN_FLIGHT", "0"),
        (["broadcaster"], "ALLIM_BROADCASTER_SHARD_SIZE", "many"),
        # milliseconds meant, seconds read: settling (and a graceful stop) would wait minutes
        (["broadcaster"], "ALLIM_BROADCASTER_SETTLE_WINDOW_SECONDS", "200"),
        (["sandbox"], "ALLIM_DATABASE_POOL_SIZE", "-1"),
        # read by the gateway's preview too: refused at start-up, not at the first preview
        (["broadcaster"], "ALLIM_BROADCASTER_QUIET_TIMEZONE", "Nowhere/City"),
        (["gateway"], "ALLIM_BROADCASTER_QUIET_TIMEZONE", "Nowhere/City"),
        (["gateway"], "ALLIM_GATEWAY_SEND_AT_MAX_PAST_MINUTES", "-5"),
    ],
)
def test_invalid_settings_are_a_short_clear_error(
    command: list[str],
    variable: str,
    value: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("ALLIM_ENVIRONMENT", "test")
    monkeypatch.setenv("ALLIM_TRACKING_SECRET", "test-tracking-secret-0123456789")
    monkeypatch.setenv(variable, value)

    assert main(command) == 2

    err = capsys.readouterr().err
    assert err.startswith(f"allim {command[0]}: invalid settings:")
    assert variable.removeprefix("ALLIM_").lower() in err
    assert "Traceback" not in err
