"""Encryption at rest, the secret key's life cycle, and `converse secrets rotate` end to end."""
from __future__ import annotations

import os
import stat
import subprocess
import sys

import httpx
import pytest

from control import secrets as sec
from control.config import ConfigError, Settings
from control.store import open_store, repo, rotate_secrets
from fixtures_control import ControlServer, base_env


def test_roundtrip_binds_row_and_detects_tampering():
    box = sec.SecretBox(sec.parse_key(sec.generate_key()))
    ct = box.encrypt_json({"auth_token": "abc"}, b"channel:ch_1")
    assert box.decrypt_json(ct, b"channel:ch_1") == {"auth_token": "abc"}
    with pytest.raises(sec.DecryptError):
        box.decrypt(ct, b"channel:ch_2")                   # copied onto another row
    version, kid, body = ct.split(".")
    flipped = body[:-2] + ("A" if body[-2] != "A" else "B") + body[-1]
    with pytest.raises(sec.DecryptError):
        box.decrypt(f"{version}.{kid}.{flipped}", b"channel:ch_1")
    for garbage in ["", "v1", "v1.x.y", "v2.00000000.AAAA", "v1." + kid + ".!!!"]:
        with pytest.raises(sec.DecryptError):
            box.decrypt(garbage, b"channel:ch_1")


def test_previous_keys_decrypt_current_key_encrypts():
    old, new = sec.parse_key(sec.generate_key()), sec.parse_key(sec.generate_key())
    ct_old = sec.SecretBox(old).encrypt(b"x", b"a")
    both = sec.SecretBox(new, [old])
    assert both.decrypt(ct_old, b"a") == b"x"
    assert not both.is_current(ct_old) and both.is_current(both.encrypt(b"y", b"a"))
    with pytest.raises(sec.DecryptError, match="does not hold"):
        sec.SecretBox(new).decrypt(ct_old, b"a")


def test_mask_never_shows_short_values():
    assert sec.mask({"a": "short", "b": "0123456789abcdefWXYZ"}) == {"a": "••••", "b": "••••WXYZ"}


def test_key_file_created_0600_and_reused(tmp_path):
    env = {"CONVERSE_SECRET_KEY_FILE": str(tmp_path / "var" / "secret.key")}
    first = Settings.from_env(env)
    mode = stat.S_IMODE(os.stat(tmp_path / "var" / "secret.key").st_mode)
    assert mode == 0o600
    again = Settings.from_env(env)
    assert first.secret_key == again.secret_key and len(first.secret_key) == 32
    assert first.token_secret == again.token_secret != first.secret_key
    assert "secret_key" not in repr(first) or repr(first.secret_key) not in repr(first)
    assert Settings.from_env(dict(env, CONVERSE_TOKEN_SECRET="shared")).token_secret == b"shared"


@pytest.mark.parametrize("content,needle", [(b"not a key\n", "not a valid key"),
                                            (b"QUFBQQ==\n", "32 bytes"),
                                            (b"\xff\xfe\n", "cannot read")])
def test_garbled_key_is_refused_with_a_clear_message(tmp_path, content, needle):
    path = tmp_path / "secret.key"
    path.write_bytes(content)
    with pytest.raises(ConfigError, match=needle):
        Settings.from_env({"CONVERSE_SECRET_KEY_FILE": str(path)})


def test_unreadable_key_refuses_to_start(tmp_path):
    (tmp_path / "secret.key").mkdir()           # a directory: unreadable as a file, even for root
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONVERSE_")}
    env.update(CONVERSE_SECRET_KEY_FILE=str(tmp_path / "secret.key"),
               DATABASE_URL=f"sqlite:///{tmp_path / 'c.db'}")
    proc = subprocess.run([sys.executable, "-m", "control.cli", "control", "--port", "1"], env=env,
                          capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert proc.returncode == 2
    assert "cannot read secret key file" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_interrupted_rotation_keeps_rows_readable(tmp_path):
    key_file = tmp_path / "secret.key"
    env = {"CONVERSE_SECRET_KEY_FILE": str(key_file), "DATABASE_URL": f"sqlite:///{tmp_path / 'c.db'}"}
    store = open_store(Settings.from_env(env))
    now = repo.now_iso()
    ct = store.box.encrypt_json({"auth_token": "t"}, b"channel:ch_1")
    store.run_sync(repo.insert_channel, repo.ChannelRow(id="ch_1", name="c", type="voice", provider="twilio",
                                                       credentials=ct, created_at=now, updated_at=now))
    # Crash after the re-encryption committed, before <key>.new was renamed into place.
    new_text = sec.generate_key()
    sec.write_key_file(str(key_file) + sec.PENDING_SUFFIX, new_text)
    assert rotate_secrets(store.db, store.box, sec.SecretBox(sec.parse_key(new_text))) == 1
    store.close()
    restarted = open_store(Settings.from_env(env))
    try:
        row = restarted.run_sync(repo.get_channel, "ch_1")
        assert restarted.box.decrypt_json(row.credentials, b"channel:ch_1") == {"auth_token": "t"}
    finally:
        restarted.close()


def test_rotate_end_to_end(tmp_path, twilio_emulator):
    """Key file mode: a channel stored under the old key, `converse secrets rotate`, then the real
    server (reading the new key file) decrypts the credentials to call the provider."""
    tw = twilio_emulator
    server = ControlServer(tmp_path, base_env(tmp_path, f"sqlite:///{tmp_path / 'converse.db'}",
                                              {"TWILIO_API_BASE": tw.url}), {"twilio": tw})
    server.api_key = server.create_key()
    store = open_store(server.settings)
    now = repo.now_iso()
    store.run_sync(repo.insert_channel, repo.ChannelRow(
        id="ch_1", name="c", type="voice", provider="twilio", created_at=now, updated_at=now,
        credentials=store.box.encrypt_json(tw.creds, b"channel:ch_1"),
        credential_fields=sorted(tw.creds)))
    store.close()
    old_key = server.settings.secret_key
    before = _ciphertext(server.settings, "ch_1")
    result = server.cli("secrets", "rotate")
    after = _ciphertext(server.settings, "ch_1")
    assert after.split(".")[1] != before.split(".")[1]          # another key id
    key_file = tmp_path / "secret.key"
    assert stat.S_IMODE(os.stat(key_file).st_mode) == 0o600
    assert not os.path.exists(str(key_file) + sec.PENDING_SUFFIX)
    with pytest.raises(sec.DecryptError):
        sec.SecretBox(old_key).decrypt(after, b"channel:ch_1")
    try:
        server.restart()
        assert server.settings.secret_key != old_key
        with server.client() as api:
            r = api.get("/api/v1/channels/ch_1/numbers")      # needs the decrypted credentials
            assert r.status_code == 200, r.text
        assert tw.auth_token not in result.stdout + result.stderr + server.log_text()
    finally:
        server.stop()


def test_rotate_with_env_key(tmp_path):
    """CONVERSE_SECRET_KEY mode: rotate prints the new key, which alone decrypts every row."""
    old_text = sec.generate_key()
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONVERSE_")}
    env.update(CONVERSE_SECRET_KEY=old_text, DATABASE_URL=f"sqlite:///{tmp_path / 'c.db'}")
    settings = Settings.from_env(env)
    store = open_store(settings)
    now = repo.now_iso()
    store.run_sync(repo.insert_channel, repo.ChannelRow(
        id="ch_1", name="c", type="voice", provider="twilio", created_at=now, updated_at=now,
        credentials=store.box.encrypt_json({"auth_token": "tok-9f8e7d6c5b4a3921"}, b"channel:ch_1")))
    store.close()
    proc = subprocess.run([sys.executable, "-m", "control.cli", "secrets", "rotate"], env=env,
                          cwd=tmp_path, capture_output=True, text=True, timeout=120, check=True)
    lines = dict(line.split("=", 1) for line in proc.stdout.splitlines() if "=" in line)
    assert lines["CONVERSE_SECRET_KEY_PREVIOUS"] == old_text
    new_settings = Settings.from_env(dict(env, CONVERSE_SECRET_KEY=lines["CONVERSE_SECRET_KEY"]))
    ct = _ciphertext(new_settings, "ch_1")
    assert sec.SecretBox(new_settings.secret_key).decrypt_json(ct, b"channel:ch_1") == {"auth_token": "tok-9f8e7d6c5b4a3921"}
    assert "tok-9f8e7d6c5b4a3921" not in proc.stdout + proc.stderr


def _ciphertext(settings, channel_id: str) -> str:
    store = open_store(settings)
    try:
        return store.run_sync(repo.get_channel, channel_id).credentials
    finally:
        store.close()
