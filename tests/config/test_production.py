"""Production shape: settings from the environment, `check --deploy` clean, `make serve` serving."""

from __future__ import annotations

import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

ROOT = Path(__file__).resolve().parents[2]


def production_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in {"DJANGO_DEBUG", "DJANGO_SETTINGS_MODULE"}}
    env.update(DJANGO_DEBUG="0", SECRET_KEY=secrets.token_urlsafe(50),
               ALLOWED_HOSTS="supervision.example.org,127.0.0.1", **extra)
    return env


def manage(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)


def test_check_deploy_is_clean_with_production_settings():
    result = manage("check", "--deploy", "--fail-level", "WARNING", env=production_env())
    assert result.returncode == 0, result.stdout + result.stderr
    # Only the informational note on the SM2 backend may appear.
    assert "WARNINGS:" not in result.stdout and "ERRORS:" not in result.stdout, result.stdout


def test_debug_off_without_secret_key_refuses_to_start():
    env = production_env()
    del env["SECRET_KEY"]
    result = manage("check", env=env)
    assert result.returncode != 0
    assert "SECRET_KEY must be set" in result.stderr


def test_check_reports_the_active_sm2_backend():
    result = manage("check", env={**os.environ, "DJANGO_DEBUG": "1"})
    assert result.returncode == 0, result.stderr
    assert re.search(r"SM2 backend", result.stdout + result.stderr, re.IGNORECASE)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.slow
def test_make_serve_starts_answers_healthz_and_serves_the_dashboard(tmp_path):
    port = _free_port()
    env = production_env(
        PORT=str(port), DATABASE_URL=f"sqlite:///{tmp_path / 'serve.sqlite3'}", SECURE_SSL_REDIRECT="0",
        SUPERVISOR_KEY_FILE=str(tmp_path / "supervisor.pem"),
    )
    env.pop("REDIS_URL", None)
    log = (tmp_path / "serve.log").open("w+")
    process = subprocess.Popen(["make", "serve"], cwd=ROOT, env=env, stdout=log,
                               stderr=subprocess.STDOUT, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        health = None
        while time.monotonic() < deadline:
            try:
                health = httpx.get(f"{base}/healthz", timeout=2)
                if health.status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert process.poll() is None, _tail(log)
            time.sleep(0.5)
        assert health is not None and health.status_code == 200, _tail(log)
        assert health.json()["status"] == "ok"

        # A regulator signs in (cookies are Secure, so the proxy header says https) and sees the page.
        created = manage("shell", "-c", (
            "from django.contrib.auth.models import User, Group;"
            "u = User.objects.create_user('smoke', password='smoke-pass-2026');"
            "u.groups.add(Group.objects.get_or_create(name='regulators')[0])"), env=env)
        assert created.returncode == 0, created.stderr
        https = {"X-Forwarded-Proto": "https"}
        with httpx.Client(base_url=base, headers=https, timeout=10) as client:
            login_page = client.get("/accounts/login/")
            assert login_page.status_code == 200
            csrf = login_page.cookies["csrftoken"]
            response = client.post(
                "/accounts/login/",
                data={"username": "smoke", "password": "smoke-pass-2026", "csrfmiddlewaretoken": csrf},
                headers={"Origin": f"https://127.0.0.1:{port}", "Cookie": f"csrftoken={csrf}"},
            )
            assert response.status_code == 302, response.text[:500]
            session = response.cookies["sessionid"]
            page = client.get("/", headers={"Cookie": f"sessionid={session}; csrftoken={csrf}"})
            assert page.status_code == 200
            assert "Content-Security-Policy" in page.headers
            assert "Strict-Transport-Security" in page.headers
            css = re.search(r'href="(/static/[^"]+\.css)"', page.text)
            assert css, page.text[:500]
            assert client.get(css.group(1)).status_code == 200
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)


def _tail(log) -> str:
    log.flush()
    log.seek(0)
    return log.read()[-3000:]
