"""Exotel ExoPhone API emulator (protocols.md 4.1):
``/v2_beta/Accounts/{sid}/IncomingPhoneNumbers``.

HTTP Basic ``api_key:api_token``; a key used on another account's sid gets 403. Errors use the
v2 envelope ``{"request_id","method","http_code","response":{"code","error_data":{"code",
"message","description"},"status":"failure","data":null}}``.

State: ``keys[api_key] = {"api_token", "account_sid"}``, ``exophones[sid] = <number JSON>``.
The PUT assigning a number to a dashboard flow (VoiceUrl/SMSUrl form fields) is served too.
"""
from __future__ import annotations

import secrets
import uuid

from ._server import Emulator, HttpError, Reply, Request

NUMS = r"/v2_beta/Accounts/(?P<account>[A-Za-z0-9_-]+)/IncomingPhoneNumbers"


class ExotelEmulator(Emulator):
    name = "exotel"

    def __init__(self):
        self.keys: dict[str, dict] = {}
        self.exophones: dict[str, dict] = {}
        super().__init__()
        self.account_sid = "converse" + secrets.token_hex(3)
        self.api_key, self.api_token = self.add_key(self.account_sid)
        self.add_exophone(self.account_sid, "+918047112233")

    @property
    def creds(self) -> dict:
        return {"account_sid": self.account_sid, "api_key": self.api_key,
                "api_token": self.api_token, "subdomain": "api.in.exotel.com"}

    def add_key(self, account_sid: str) -> tuple[str, str]:
        key, token = secrets.token_hex(20), secrets.token_hex(20)
        with self.lock:
            self.keys[key] = {"api_token": token, "account_sid": account_sid}
        return key, token

    def add_exophone(self, account_sid: str, phone_number: str) -> str:
        sid = secrets.token_hex(16)
        with self.lock:
            self.exophones[sid] = {
                "sid": sid, "account_sid": account_sid, "phone_number": phone_number,
                "friendly_name": phone_number, "voice_url": None, "sms_url": None,
                "capabilities": {"voice": True, "sms": True}, "number_type": "Landline",
                "region": "KA", "date_created": "2026-01-01 00:00:00",
                "uri": f"/v2_beta/Accounts/{account_sid}/IncomingPhoneNumbers/{sid}"}
        return sid

    def setup_routes(self) -> None:
        self.route("GET", NUMS, "exophones.list", self._list)
        self.route("GET", NUMS + r"/(?P<sid>[0-9a-f]+)", "exophones.get", self._get)
        self.route("PUT", NUMS + r"/(?P<sid>[0-9a-f]+)", "exophones.update", self._update)

    def authenticate(self, req: Request) -> None:
        key, token = req.auth or ("", "")
        entry = self.keys.get(key)
        if entry is None or not secrets.compare_digest(entry["api_token"], token):
            raise HttpError(401, "Authentication failed", code=1010,
                            description="Invalid API key or token")
        if entry["account_sid"] != req.match.get("account"):
            raise HttpError(403, "Forbidden", code=1011,
                            description="These credentials do not belong to this account")

    def error_body(self, status: int, message: str, extra: dict) -> dict:
        return {"request_id": uuid.uuid4().hex, "method": "", "http_code": status,
                "response": {"code": status, "status": "failure", "data": None,
                             "error_data": {"code": extra.get("code", status), "message": message,
                                            "description": extra.get("description", message)}}}

    def _list(self, req: Request) -> Reply:
        rows = [dict(p) for p in self.exophones.values()
                if p["account_sid"] == req.match["account"]]
        return Reply(200, {"page": 0, "page_size": len(rows), "incoming_phone_numbers": rows})

    def _phone(self, req: Request) -> dict:
        p = self.exophones.get(req.match["sid"])
        if p is None or p["account_sid"] != req.match["account"]:
            raise HttpError(404, "Not Found", code=1000, description="ExoPhone not found")
        return p

    def _get(self, req: Request) -> Reply:
        return Reply(200, {"incoming_phone_number": dict(self._phone(req))})

    def _update(self, req: Request) -> Reply:
        p, form = self._phone(req), req.form
        for param, key in (("VoiceUrl", "voice_url"), ("SMSUrl", "sms_url"),
                           ("FriendlyName", "friendly_name")):
            if param in form:
                p[key] = form[param]
        return Reply(200, {"incoming_phone_number": dict(p)})
