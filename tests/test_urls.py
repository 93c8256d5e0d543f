"""Broker URLs as they are shown: no password, wherever the URL carries it."""

from __future__ import annotations

import pytest

from smptune.errors import ConfigError
from smptune.urls import check_broker_url, mask_secrets, mask_url


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        (
            "redis://redis.internal:6379/0?password=hunter2",
            "redis://redis.internal:6379/0?password=***",
        ),
        (
            "rediss://worker@redis.internal:6380/2?ssl_cert_reqs=required&password=hunter2",
            "rediss://worker@redis.internal:6380/2?ssl_cert_reqs=required&password=***",
        ),
        (
            "redis://:pa55@h:6379/0?sentinel_password=hunter2&db=1&Password=x%26y",
            "redis://:***@h:6379/0?sentinel_password=***&db=1&Password=***",
        ),
        (
            "unix:///run/redis.sock?db=2&password=hunter2",
            "unix:///run/redis.sock?db=2&password=***",
        ),
        ("redis://h:6379/0?auth_token=hunter2&socket_timeout=5", None),
        ("redis://127.0.0.1:6379/0?db=1", "redis://127.0.0.1:6379/0?db=1"),
    ],
)
def test_a_password_in_the_query_is_masked_too(url, shown):
    masked = mask_url(url)
    assert "hunter2" not in masked and "pa55" not in masked and "x%26y" not in masked
    if shown is not None:
        assert masked == shown
    else:
        assert "socket_timeout=5" in masked and "auth_token=***" in masked


def test_error_text_and_usage_errors_never_show_a_query_password():
    url = "redis://redis.internal:6379/0?password=hunter2"
    text = f"cannot reach {url} (auth hunter2 refused)"
    assert "hunter2" not in mask_secrets(text, url)
    with pytest.raises(ConfigError) as bad:
        check_broker_url("redis://redis.internal:6379/x?password=hunter2")
    assert "hunter2" not in str(bad.value) and "password=***" in str(bad.value)
