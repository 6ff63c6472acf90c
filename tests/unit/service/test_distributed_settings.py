"""The distributed mode's settings hold together, or the service does not start (one clear line)."""

from __future__ import annotations

import pytest

from cachemigrate.errors import ConfigError
from cachemigrate.service.settings import Settings

PG = "postgresql+psycopg://cm@db:5432/cm"
AMQP = "amqp://guest:guest@127.0.0.1:5672//"


def test_embedded_needs_nothing_more() -> None:
    Settings().check_distributed()
    assert Settings().execution_mode == "embedded"


@pytest.mark.parametrize(
    ("fields", "says"),
    [
        ({"broker_url": AMQP}, "CACHEMIGRATE_DATABASE_URL"),
        ({"broker_url": AMQP, "database_url": "sqlite:////tmp/x.db"}, "PostgreSQL"),
        ({"database_url": PG}, "CACHEMIGRATE_BROKER_URL"),
        ({"database_url": PG, "broker_url": AMQP, "lease_seconds": 4, "heartbeat_seconds": 2}, "half"),
    ],
)
def test_distributed_refuses_what_cannot_work(fields: dict[str, object], says: str) -> None:
    settings = Settings.model_validate({"execution_mode": "distributed", **fields})
    with pytest.raises(ConfigError, match=says):
        settings.check_distributed()


def test_the_margin_leaves_room_to_stop_before_the_lease_ends() -> None:
    for lease, beat in ((4, 1), (15, 3), (60, 5), (3, 1)):
        s = Settings(lease_seconds=lease, heartbeat_seconds=beat)
        margin = s.lease_margin_seconds()
        assert min(beat + 1, lease / 2) <= margin <= lease / 2, (lease, beat, margin)
        assert lease - margin > 0  # it stops applying before the lease ends, and not at once
    Settings(database_url=PG, broker_url=AMQP, execution_mode="distributed").check_distributed()
