"""RELIABILITY 15, the halves tests/test_secrets.py leaves open:

- every server entry point (``converse up`` and ``converse gateway``, besides ``converse control``
  covered there) refuses to start without a readable, well-formed key: exit status 2, a clear
  message, no traceback, nothing served;
- rotation re-encrypts *everything*: many channels of every provider (plus ones without
  credentials), and afterwards no column of any table holds a ciphertext under the old key or a
  credential in clear; the new key alone decrypts every row; a second rotation has nothing to do.
"""
from __future__ import annotations

import os
import sqlite3
import subprocess
import sys

import pytest

from conftest import ROOT
from control import secrets as sec
from control.config import Settings
from control.store import channel_aad, open_store, repo, rotate_secrets


def _env(tmp_path, **extra) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("CONVERSE_", "DATABASE_URL", "CONTROL_", "GATEWAY_"))}
    env.update(PYTHONPATH=str(ROOT), DATABASE_URL=f"sqlite:///{tmp_path / 'c.db'}", **extra)
    return env


@pytest.mark.parametrize("command", [["up", "--port", "1", "--gateway-port", "1"],
                                     ["gateway", "--port", "1"]])
@pytest.mark.parametrize("key", ["directory", "garbled"])
def test_servers_refuse_to_start_without_a_readable_key(tmp_path, command, key):
    if key == "directory":
        (tmp_path / "secret.key").mkdir()          # unreadable as a file, even for root
        env = _env(tmp_path, CONVERSE_SECRET_KEY_FILE=str(tmp_path / "secret.key"))
        needle = "cannot read secret key file"
    else:
        env = _env(tmp_path, CONVERSE_SECRET_KEY="not-a-key")
        needle = "CONVERSE_SECRET_KEY: the secret key is not base64url"
    proc = subprocess.run([sys.executable, "-m", "control.cli", *command], env=env, cwd=tmp_path,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert needle in proc.stderr
    assert "Traceback" not in proc.stderr
    assert "Demo:" not in proc.stdout                  # nothing was served


PROVIDERS = [("voice", "twilio"), ("sms", "twilio"), ("voice", "plivo"), ("voice", "exotel"),
             ("whatsapp", "meta")]


def _secret(i: int) -> str:
    return f"plain-credential-{i:03d}-xyzzy"


def test_rotation_reencrypts_every_row_and_leaves_nothing_under_the_old_key(tmp_path):
    db_path = tmp_path / "c.db"
    old_text = sec.generate_key()
    settings = Settings(database_url=f"sqlite:///{db_path}", secret_key=sec.parse_key(old_text))
    store = open_store(settings)
    old, new = store.box, sec.SecretBox(sec.parse_key(sec.generate_key()))
    now = repo.now_iso()
    expected = {}
    try:
        for i in range(40):
            ctype, provider = PROVIDERS[i % len(PROVIDERS)]
            creds = {"auth_token": _secret(i), "account": f"acct-{i}"}
            store.run_sync(repo.insert_channel, repo.ChannelRow(
                id=f"ch_{i}", name=f"c{i}", type=ctype, provider=provider, created_at=now,
                updated_at=now, credentials=old.encrypt_json(creds, channel_aad(f"ch_{i}")),
                credential_fields=sorted(creds)))
            expected[f"ch_{i}"] = creds
        for i in range(3):                         # web channels: no credentials at all
            store.run_sync(repo.insert_channel, repo.ChannelRow(
                id=f"web_{i}", name=f"w{i}", type="web", created_at=now, updated_at=now))
        assert rotate_secrets(store.db, old, new) == 40
        assert rotate_secrets(store.db, old, new) == 0          # nothing left to do
        for channel_id, creds in expected.items():     # ``new`` knows no previous key
            row = store.run_sync(repo.get_channel, channel_id)
            assert new.decrypt_json(row.credentials, channel_aad(channel_id)) == creds
            with pytest.raises(sec.DecryptError):
                sec.SecretBox(settings.secret_key).decrypt(row.credentials,
                                                           channel_aad(channel_id))
    finally:
        store.close()
    old_tag = f".{sec.key_id(settings.secret_key)}."
    cells = _every_text_cell(db_path)
    assert cells, "the scan found no data"
    for table, column, value in cells:
        assert old_tag not in value, (table, column)
        assert "xyzzy" not in value, (table, column)           # no credential in clear


def _every_text_cell(db_path) -> list[tuple[str, str, str]]:
    """Every text/blob value of every column of every table (the whole database, not just the
    column the rotation knows about)."""
    out = []
    with sqlite3.connect(db_path) as conn:
        tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        for table in tables:
            columns = [r[1] for r in conn.execute(f'PRAGMA table_info("{table}")')]
            for row in conn.execute(f'SELECT * FROM "{table}"'):
                for column, value in zip(columns, row):
                    if isinstance(value, bytes):
                        value = value.decode("latin-1")
                    if isinstance(value, str):
                        out.append((table, column, value))
    return out
