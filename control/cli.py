"""The ``converse`` command."""
from __future__ import annotations

import argparse
import logging
import os
import sys


def _selfcheck(args) -> int:
    from gateway import audio
    print(f"converse audio core {audio.version()} loaded")
    return 0


def _settings(create_key: bool = True):
    from control.config import ConfigError, Settings
    try:
        return Settings.from_env(create_key=create_key)
    except ConfigError as exc:
        print(f"converse: {exc}", file=sys.stderr)
        raise SystemExit(2) from None


def _store(settings, *, auto_migrate: bool = True):
    from control.store import StoreError, open_store
    try:
        return open_store(settings, auto_migrate=auto_migrate)
    except StoreError as exc:
        print(f"converse: {exc}", file=sys.stderr)
        raise SystemExit(2) from None


def _logging() -> None:
    logging.basicConfig(level=os.environ.get("CONVERSE_LOG_LEVEL", "INFO").upper(),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    # The Twilio SDK logs every request (phone numbers in query strings) at INFO.
    logging.getLogger("twilio.http_client").setLevel(logging.WARNING)


def _control(args) -> int:
    import trio

    from control.api.serve import run_control
    _logging()
    settings = _settings()
    store = _store(settings)
    try:
        trio.run(lambda: run_control(settings, store, host=args.host, port=args.port))
    finally:
        store.close()
    return 0


def _migrate(args) -> int:
    from control.store import agent_secrets, migrate, open_store
    settings = _settings()
    store = _store(settings, auto_migrate=False)
    try:
        applied = migrate(store.db)
        agent_secrets.seal_clear_rows(store.db, store.box)    # the Python half of migration 3
    finally:
        store.close()
    print(f"applied migrations {applied}" if applied else "database schema is up to date")
    return 0


def _keys_create(args) -> int:
    from control.store import create_api_key
    store = _store(_settings())
    try:
        row, key = store.run_sync(create_api_key, args.name)
    finally:
        store.close()
    print(f"created API key {row.id} ({row.name}); it is shown only now:", file=sys.stderr)
    print(key)
    return 0


def _keys_list(args) -> int:
    from control.store import repo
    store = _store(_settings())
    try:
        rows = store.run_sync(repo.list_api_keys, write=False)
    finally:
        store.close()
    for r in rows:
        print(f"{r.id}\t{r.name}\t{r.prefix}…\tcreated {r.created_at}"
              + (f"\trevoked {r.revoked_at}" if r.revoked_at else ""))
    return 0


def _keys_revoke(args) -> int:
    from control.store import repo
    store = _store(_settings())
    try:
        ok = store.run_sync(repo.revoke_api_key, args.id)
    finally:
        store.close()
    print(f"revoked {args.id}" if ok else f"no active key {args.id}", file=sys.stderr)
    return 0 if ok else 1


def _secrets_generate(args) -> int:
    from control.secrets import generate_key
    print(generate_key())
    return 0


def _secrets_rotate(args) -> int:
    """New key -> (key file: written to <file>.new first) -> every secret re-encrypted in one
    transaction -> <file>.new renamed over <file>. An interruption at any point leaves every row
    readable: nodes also load <file>.new as a decryption key."""
    from control.secrets import PENDING_SUFFIX, SecretBox, generate_key, parse_key, write_key_file
    from control.store import rotate_secrets
    settings = _settings(create_key=False)
    store = _store(settings)
    new_text = generate_key()
    new_key = parse_key(new_text)
    try:
        if settings.key_file:
            pending = settings.key_file + PENDING_SUFFIX
            write_key_file(pending, new_text)
            n = rotate_secrets(store.db, store.box, SecretBox(new_key))
            os.replace(pending, settings.key_file)
            print(f"re-encrypted {n} secret(s); the new key is in {settings.key_file}. "
                  "Restart every control and gateway node.")
        else:
            n = rotate_secrets(store.db, store.box, SecretBox(new_key))
            print(f"re-encrypted {n} secret(s). Set on every node, then restart:", file=sys.stderr)
            print(f"CONVERSE_SECRET_KEY={new_text}")
            print(f"CONVERSE_SECRET_KEY_PREVIOUS={os.environ['CONVERSE_SECRET_KEY']}")
        if not os.environ.get("CONVERSE_TOKEN_SECRET"):
            print("note: session tokens are derived from the key; tokens issued before now will "
                  "not verify after the restart (set CONVERSE_TOKEN_SECRET to decouple them)",
                  file=sys.stderr)
    finally:
        store.close()
    return 0


def _add_media_plane_commands(sub) -> None:
    """`converse up` (both planes) and `converse gateway`: the logic lives in control/up.py."""
    from control import up
    p = sub.choices["up"]
    p.add_argument("--gateway-port", type=int, default=8080)
    p.set_defaults(func=up.up_command)
    p = sub.add_parser("gateway", help="run the media plane (WebSocket gateway)")
    p.add_argument("--host", default=os.environ.get("GATEWAY_HOST", "127.0.0.1"))
    p.add_argument("--port", type=int, default=int(os.environ.get("GATEWAY_PORT", "8080")))
    p.add_argument("--workers", type=int, default=1, help="processes sharing the port (one per core)")
    p.add_argument("--reuse-port", action="store_true", help="bind with SO_REUSEPORT")
    p.set_defaults(func=up.gateway_command)


def _simulate_call_arguments(p) -> None:
    from control import simulate          # the logic lives in control/simulate.py
    simulate.add_arguments(p)
    p.set_defaults(func=simulate.command)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="converse")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("selfcheck", help="load the native audio core and exit").set_defaults(func=_selfcheck)

    for name, help_ in (("control", "run the control plane (REST API) with Hypercorn"),
                        ("up", "run both planes on embedded defaults (seeds an echo demo)")):
        p = sub.add_parser(name, help=help_)
        p.add_argument("--host", default=None, help="default: CONTROL_HOST or 127.0.0.1")
        p.add_argument("--port", type=int, default=None, help="default: CONTROL_PORT or 8000")
        p.set_defaults(func=_control)
    _add_media_plane_commands(sub)

    sim = sub.add_parser("simulate", help="simulate provider traffic").add_subparsers(
        dest="simulate_command", required=True)
    p = sim.add_parser("call", help="play a WAV into a phone channel as Twilio/Plivo/Exotel would")
    _simulate_call_arguments(p)

    sub.add_parser("migrate", help="apply pending database migrations").set_defaults(func=_migrate)

    keys = sub.add_parser("keys", help="API keys").add_subparsers(dest="keys_command", required=True)
    p = keys.add_parser("create", help="create an API key (printed once)")
    p.add_argument("name")
    p.set_defaults(func=_keys_create)
    keys.add_parser("list", help="list API keys").set_defaults(func=_keys_list)
    p = keys.add_parser("revoke", help="revoke an API key by id")
    p.add_argument("id")
    p.set_defaults(func=_keys_revoke)

    secrets = sub.add_parser("secrets", help="the secret key").add_subparsers(
        dest="secrets_command", required=True)
    secrets.add_parser("rotate", help="re-encrypt every stored secret under a new key").set_defaults(
        func=_secrets_rotate)
    secrets.add_parser("generate", help="print a new random key").set_defaults(func=_secrets_generate)

    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
