"""Security: Redis with a password, with an ACL user, over TLS; no password ever printed."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from smptune.errors import BrokerError
from smptune.queue.embedded_redis import EmbeddedRedis
from smptune.queue.store import SweepStore

from conftest import run_cli, submit_and_wait, write_config

PASSWORD = "s3cret-Pa55"


def _sweep_through(url: str, tmp_path: Path, start_workers) -> str:
    """Run a small sweep against ``url``; return everything the user saw, logs included."""
    workers = start_workers("--cpu", "1", broker=url)
    try:
        sweep_id, result = submit_and_wait(
            write_config(tmp_path / "s.yaml", n_trials=2), url, tmp_path / "a"
        )
        assert result.returncode == 0, result.stderr
        status = run_cli("producer", "status", sweep_id, "--broker", url)
        assert status.returncode == 0 and "[done]" in status.stdout, status.stderr
        store = SweepStore.from_url(url)
        assert store.get_sweep(sweep_id).count("complete") == 2
        bad = run_cli(
            "producer", "status", sweep_id, "--broker", url.replace(PASSWORD, "wrong-" + PASSWORD)
        )
        assert bad.returncode == 3
    finally:
        workers.stop()
    return result.stdout + result.stderr + status.stdout + bad.stderr + workers.logs()


def test_a_password_protected_redis_works_and_the_password_is_never_printed(
    tmp_path, start_workers
):
    with EmbeddedRedis(tmp_path / "redis", extra_args=("--requirepass", PASSWORD)) as redis:
        url = f"redis://:{PASSWORD}@127.0.0.1:{redis.port}/0"
        seen = _sweep_through(url, tmp_path, start_workers)
    assert PASSWORD not in seen
    assert "refused the credentials" in seen or "invalid" in seen.lower()


def test_an_acl_user_works(tmp_path, start_workers):
    acl = (
        "--user",
        "default",
        "off",
        "--user",
        "smptune",
        "on",
        f">{PASSWORD}",
        "~*",
        "&*",
        "+@all",
    )
    with EmbeddedRedis(tmp_path / "redis", extra_args=acl) as redis:
        url = f"redis://smptune:{PASSWORD}@127.0.0.1:{redis.port}/0"
        seen = _sweep_through(url, tmp_path, start_workers)
    assert PASSWORD not in seen


def _tls_certificates(folder: Path) -> None:
    folder.mkdir()

    def ssl(*args: str) -> None:
        subprocess.run(["openssl", *args], cwd=folder, check=True, capture_output=True)

    ssl(
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "2",
        "-subj",
        "/CN=smptune-ca",
        "-keyout",
        "ca.key",
        "-out",
        "ca.crt",
    )
    ssl(
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-subj",
        "/CN=127.0.0.1",
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
    )
    (folder / "ext.cnf").write_text("subjectAltName=IP:127.0.0.1\n")
    ssl(
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.crt",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-days",
        "2",
        "-extfile",
        "ext.cnf",
        "-out",
        "server.crt",
    )


def test_tls_with_a_password_works(tmp_path, start_workers):
    if shutil.which("redis-server") is None or shutil.which("openssl") is None:
        pytest.skip("TLS test needs redis-server (built with TLS) and openssl on PATH")
    certs = tmp_path / "certs"
    _tls_certificates(certs)
    redis = EmbeddedRedis(
        tmp_path / "redis",
        tls=True,
        extra_args=(
            "--requirepass",
            PASSWORD,
            "--tls-cert-file",
            str(certs / "server.crt"),
            "--tls-key-file",
            str(certs / "server.key"),
            "--tls-ca-cert-file",
            str(certs / "ca.crt"),
            "--tls-auth-clients",
            "no",
        ),
    )
    try:
        redis.start()
    except BrokerError as exc:
        pytest.skip(f"this redis-server does not start with TLS: {exc}")
    try:
        url = (
            f"rediss://:{PASSWORD}@127.0.0.1:{redis.port}/0?ssl_cert_reqs=required"
            f"&ssl_ca_certs={certs / 'ca.crt'}"
        )
        seen = _sweep_through(url, tmp_path, start_workers)
    finally:
        redis.stop()
    assert PASSWORD not in seen
