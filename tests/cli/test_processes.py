from pathlib import Path

import pytest

from cli.processes import Service, ServiceError, free_port


def test_a_service_that_exits_during_start_up_is_reported(tmp_path: Path) -> None:
    service = Service(
        name="bad",
        args=["no-such-subcommand"],
        env={},
        ready_url=f"http://127.0.0.1:{free_port()}/healthz",
        log_path=tmp_path / "bad.log",
    )
    service.start()
    with pytest.raises(ServiceError, match="exited with 2"):
        service.wait_ready(timeout=30)
    assert "invalid choice" in service.tail()
    assert service.stop() == 2


def test_free_ports_are_distinct_and_bindable() -> None:
    ports = {free_port() for _ in range(5)}
    assert len(ports) == 5
    assert all(1024 < p < 65536 for p in ports)
