"""Settings from the environment (and nothing else), read once at startup."""
from __future__ import annotations

import dataclasses
import os
import pathlib

import msgspec


class ProviderEndpoints(msgspec.Struct, frozen=True):
    twilio: str = "https://api.twilio.com"
    plivo: str = "https://api.plivo.com"
    exotel: str = "https://api.exotel.com"     # Exotel's per-region "subdomain" host
    meta: str = "https://graph.facebook.com/v21.0"

    @classmethod
    def from_env(cls, env=os.environ) -> "ProviderEndpoints":
        d = cls()
        return cls(
            twilio=env.get("TWILIO_API_BASE", d.twilio).rstrip("/"),
            plivo=env.get("PLIVO_API_BASE", d.plivo).rstrip("/"),
            exotel=env.get("EXOTEL_API_BASE", d.exotel).rstrip("/"),
            meta=env.get("META_GRAPH_BASE", d.meta).rstrip("/"),
        )


class ConfigError(Exception):
    """A setting is missing or unusable; the message tells the operator what to fix."""


DEFAULT_PUBLIC_URL = "http://localhost:8000"
DEFAULT_DATABASE_URL = "sqlite:///./var/converse.db"
DEFAULT_KEY_FILE = "./var/secret.key"


def _gateway_url_from(public_url: str | None) -> str:
    if not public_url:
        return "ws://localhost:8080"
    if public_url.startswith("https://"):
        return "wss://" + public_url[len("https://"):]
    if public_url.startswith("http://"):
        return "ws://" + public_url[len("http://"):]
    return public_url


def _int_env(env, name: str, default: int) -> int:
    raw = env.get(name)
    if raw in (None, ""):
        return default
    try:
        return int(raw)
    except ValueError:
        raise ConfigError(f"{name} must be an integer, got {raw!r}") from None


def _float_env(env, name: str, default: float) -> float:
    raw = env.get(name)
    if raw in (None, ""):
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a number, got {raw!r}") from None
    if not value > 0:
        raise ConfigError(f"{name} must be positive, got {raw!r}")
    return value


@dataclasses.dataclass(frozen=True, kw_only=True)
class Settings:
    """Everything the control plane reads from the environment. Secrets are excluded from repr so
    that logging a Settings object can never print a key."""
    public_url: str = DEFAULT_PUBLIC_URL
    gateway_public_url: str = "ws://localhost:8080"
    database_url: str = DEFAULT_DATABASE_URL
    key_file: str | None = DEFAULT_KEY_FILE      # None when the key came from CONVERSE_SECRET_KEY
    control_host: str = "127.0.0.1"
    control_port: int = 8000
    session_ttl_s: int = 300
    provider_deadline_s: float = 10.0
    providers: ProviderEndpoints = ProviderEndpoints()
    secret_key: bytes = dataclasses.field(default=b"", repr=False)
    previous_keys: tuple[bytes, ...] = dataclasses.field(default=(), repr=False)
    token_secret: bytes = dataclasses.field(default=b"", repr=False)

    @classmethod
    def from_env(cls, env=os.environ, *, create_key: bool = True) -> "Settings":
        """Read the environment; load (or on first start create) the secret key.

        Raises :class:`ConfigError` with an operator-facing message on an unreadable or garbled key.
        """
        from control import secrets as sec

        public_url = (env.get("PUBLIC_URL") or DEFAULT_PUBLIC_URL).rstrip("/")
        gateway_url = (env.get("GATEWAY_PUBLIC_URL") or _gateway_url_from(env.get("PUBLIC_URL"))).rstrip("/")
        key_file: str | None = None
        try:
            if env.get("CONVERSE_SECRET_KEY"):
                try:
                    key = sec.parse_key(env["CONVERSE_SECRET_KEY"])
                except sec.SecretKeyError as exc:
                    raise sec.SecretKeyError(f"CONVERSE_SECRET_KEY: {exc}") from None
            else:
                key_file = env.get("CONVERSE_SECRET_KEY_FILE") or DEFAULT_KEY_FILE
                key = sec.load_key_file(key_file, create=create_key)
            previous = tuple(sec.parse_key(k) for k in
                             (env.get("CONVERSE_SECRET_KEY_PREVIOUS") or "").split(",") if k.strip())
            if key_file is not None:
                previous += sec.pending_keys(key_file)
        except sec.SecretKeyError as exc:
            raise ConfigError(str(exc)) from None
        token_secret = (env["CONVERSE_TOKEN_SECRET"].encode() if env.get("CONVERSE_TOKEN_SECRET")
                        else sec.derive_token_secret(key))
        return cls(
            public_url=public_url,
            gateway_public_url=gateway_url,
            database_url=env.get("DATABASE_URL") or DEFAULT_DATABASE_URL,
            key_file=key_file,
            control_host=env.get("CONTROL_HOST") or "127.0.0.1",
            control_port=_int_env(env, "CONTROL_PORT", 8000),
            session_ttl_s=_int_env(env, "CONVERSE_SESSION_TTL_S", 300),
            provider_deadline_s=_float_env(env, "CONVERSE_PROVIDER_DEADLINE_S", 10.0),
            providers=ProviderEndpoints.from_env(env),
            secret_key=key,
            previous_keys=previous,
            token_secret=token_secret,
        )

    def webhook_url(self, provider: str, channel_id: str) -> str:
        return f"{self.public_url}/api/v1/webhooks/{provider}/{channel_id}"


def sqlite_path(database_url: str) -> pathlib.Path | None:
    """``sqlite:///rel/path`` or ``sqlite:////abs/path`` -> the file path; None if not SQLite."""
    if not database_url.startswith("sqlite:///"):
        return None
    return pathlib.Path(database_url[len("sqlite:///"):])
