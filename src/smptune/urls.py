"""Broker URLs: where they come from, and how they are shown without their password."""

from __future__ import annotations

import os
import re
import ssl
from urllib.parse import parse_qs, unquote_plus, urlsplit

from smptune.errors import ConfigError

BROKER_ENV = "SMPTUNE_BROKER_URL"
REDIS_SCHEMES = ("redis", "rediss", "unix")


def broker_url_from(cli_value: str | None) -> str | None:
    """The broker URL from ``--broker``, else ``SMPTUNE_BROKER_URL``, else None (local mode)."""
    return cli_value or os.environ.get(BROKER_ENV) or None


def check_broker_url(url: str, key: str = "--broker") -> str:
    """``url`` if redis-py can read it, else :class:`ConfigError` naming ``key``."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - a port that is not a number in 0-65535 raises ValueError
    except ValueError as exc:
        raise ConfigError(f"{key}: not a valid Redis URL ({exc})") from None
    if parts.scheme not in REDIS_SCHEMES:
        raise ConfigError(
            f"{key}: {mask_url(url)!r} is not a Redis URL (expected redis://, rediss:// or unix://)"
        )
    shown = mask_url(url)
    if parts.scheme == "unix" and not parts.path:
        raise ConfigError(f"{key}: {shown!r} names no socket (unix:///path/to/redis.sock)")
    database = parts.path.strip("/") if parts.scheme != "unix" else ""
    if database and not database.isdigit():
        raise ConfigError(f"{key}: {shown!r}: the database {database!r} is not a number")
    query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
    if "db" in query and not query["db"].isdigit():
        raise ConfigError(f"{key}: {shown!r}: the database {query['db']!r} is not a number")
    cert_reqs = query.get("ssl_cert_reqs")
    if cert_reqs is not None and cert_reqs not in _CERT_REQS:
        raise ConfigError(
            f"{key}: {shown!r}: ssl_cert_reqs={cert_reqs!r} (use {', '.join(_CERT_REQS)})"
        )
    from redis.connection import parse_url

    try:
        parse_url(url)  # redis-py's own reading: its query options (socket_timeout, ...)
    except ValueError as exc:
        raise ConfigError(f"{key}: {shown!r}: {exc}") from None
    return url


def mask_url(url: str) -> str:
    """``redis://user:secret@host:6379/0`` → ``redis://user:***@host:6379/0``; a secret in
    the query (``?password=``, ``sentinel_password=``, a token) is masked as well."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return "<unparseable url>"
    query = "&".join(
        f"{name}=***" if _SECRET_NAME.search(unquote_plus(name)) else f"{name}{sep}{value}"
        for name, sep, value in (item.partition("=") for item in parts.query.split("&"))
    )
    netloc = parts.netloc
    if parts.password is not None:
        userinfo = f"{parts.username}:***" if parts.username else ":***"
        host = parts.hostname or ""
        if port is not None:
            host = f"{host}:{port}"
        netloc = f"{userinfo}@{host}"
    if netloc == parts.netloc and query == parts.query:
        return url
    shown = f"{parts.scheme}://{netloc}{parts.path}"  # unix:///path keeps its three slashes
    return shown + (f"?{query}" if query else "") + (f"#{parts.fragment}" if parts.fragment else "")


def _secrets_of(url: str) -> list[str]:
    """The secrets ``url`` carries: its password, and each secret-looking query value."""
    try:
        parts = urlsplit(url)
        found = [parts.password or ""]
    except ValueError:
        return []
    for item in parts.query.split("&"):
        name, _, value = item.partition("=")
        if _SECRET_NAME.search(unquote_plus(name)):
            found += [value, unquote_plus(value)]
    return [secret for secret in found if secret]


def mask_secrets(text: str, url: str | None) -> str:
    """Replace the password of ``url`` (and any secret in its query) wherever it appears in
    ``text``."""
    if not url:
        return text
    found = _secrets_of(url)
    if found:
        text = text.replace(url, mask_url(url))
        for secret in sorted(found, key=len, reverse=True):
            text = text.replace(secret, "***")
    return text


#: Query parameters whose value is a secret (``password``, ``sentinel_password``, ...).
_SECRET_NAME = re.compile(r"pass|secret|token|auth|credential", re.IGNORECASE)

_CERT_REQS = {
    "required": ssl.CERT_REQUIRED,
    "CERT_REQUIRED": ssl.CERT_REQUIRED,
    "optional": ssl.CERT_OPTIONAL,
    "CERT_OPTIONAL": ssl.CERT_OPTIONAL,
    "none": ssl.CERT_NONE,
    "CERT_NONE": ssl.CERT_NONE,
}


def tls_options(url: str) -> dict[str, ssl.VerifyMode | str] | None:
    """For a ``rediss://`` URL, the TLS options its query names (``ssl_cert_reqs``,
    ``ssl_ca_certs``, ``ssl_certfile``, ``ssl_keyfile``); None for plain ``redis://``.

    Certificates are verified unless the URL says ``ssl_cert_reqs=none``.
    """
    parts = urlsplit(url)
    if parts.scheme != "rediss":
        return None
    query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
    options: dict[str, ssl.VerifyMode | str] = {
        "ssl_cert_reqs": _CERT_REQS.get(query.get("ssl_cert_reqs", "required"), ssl.CERT_REQUIRED),
    }
    for key in ("ssl_ca_certs", "ssl_certfile", "ssl_keyfile"):
        if query.get(key):
            options[key] = query[key]
    return options
