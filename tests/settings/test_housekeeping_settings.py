"""The housekeeping and metrics settings (issue 13): zeekctl's formats, and round trips."""

from __future__ import annotations

from pathlib import Path

import pytest

from mgmt.exceptions import ConfigError
from mgmt.settings.model import AgentSettings
from mgmt.settings.show import render_settings
from mgmt.settings.sources import load_settings
from tests.support.settings import ENV, HOST

DAY = 86400.0


def agent(tmp_path: Path, text: str) -> tuple[AgentSettings, dict[str, str]]:
    path = tmp_path / "s.toml"
    path.write_text(f"[common]\nstate_dir = '{tmp_path}'\n[agent]\n{text}")
    settings, sources = load_settings("agent", config_path=str(path), env=ENV, flags={}, host=HOST)
    assert isinstance(settings, AgentSettings)
    return settings, sources


@pytest.mark.parametrize(
    ("text", "field", "value"),
    [
        ('log_expire_interval = "30 days"', "log_expire_interval", 30 * DAY),
        ('log_expire_interval = "12 hr"', "log_expire_interval", 12 * 3600.0),
        ('log_expire_interval = "90 min"', "log_expire_interval", 5400.0),
        ("log_expire_interval = 7", "log_expire_interval", 7 * DAY),  # zeekctl: days
        ('crash_expire_interval = "2"', "crash_expire_interval", 2 * DAY),
        ("log_expire_interval = 0", "log_expire_interval", 0.0),
        ('keep_logs = ["conn.*", "notice*"]', "keep_logs", ("conn.*", "notice*")),
        ('archive_max_size = "500G"', "archive_max_size", 500 * 1024**3),
        ("archive_max_size = 1048576", "archive_max_size", 1048576),
        ("min_disk_space = 10", "min_disk_space", 10.0),
        ("metrics_port = 9911", "metrics_port", 9911),
    ],
)
def test_values(tmp_path: Path, text: str, field: str, value: object) -> None:
    """Intervals as zeekctl writes them (a bare number is days), sizes with units,
    percentages, ports."""
    settings, _ = agent(tmp_path, text)
    assert getattr(settings, field) == value


def test_defaults_keep_everything(tmp_path: Path) -> None:
    """By default nothing expires, disk warnings at 5 % free (zeekctl), no metrics port."""
    s, _ = agent(tmp_path, "")
    assert (s.log_expire_interval, s.crash_expire_interval, s.archive_max_size) == (0, 0, 0)
    assert (s.min_disk_space, s.expire_for_disk_space, s.keep_logs) == (5.0, False, ())
    assert (s.metrics_port, s.metrics_address) == (0, "127.0.0.1")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('log_expire_interval = "30 weeks"', "log_expire_interval"),
        ('archive_max_size = "lots"', "archive_max_size"),
        ("min_disk_space = 101", "min_disk_space"),
        ("archive_max_size = -1", "archive_max_size"),
    ],
)
def test_bad_values_name_the_key(tmp_path: Path, text: str, message: str) -> None:
    """A bad value stops loading with an error naming the key."""
    with pytest.raises(ConfigError, match=message):
        agent(tmp_path, text)


def test_shown_values_load_back(tmp_path: Path) -> None:
    """daemon-settings prints intervals in zeekctl's units, and its output loads back to
    the same values."""
    s, sources = agent(tmp_path, 'log_expire_interval = "36 hr"\ncrash_expire_interval = 2\n')
    shown = [
        line.split("  #")[0] for line in render_settings(s, sources) if "expire_interval" in line
    ]
    assert shown == ['log_expire_interval = "36 hr"', 'crash_expire_interval = "2 day"']
    again, _ = agent(tmp_path, "\n".join(shown))
    assert (again.log_expire_interval, again.crash_expire_interval) == (36 * 3600.0, 2 * DAY)
