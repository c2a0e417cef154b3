"""Meta Graph API emulator for the WhatsApp Cloud API (protocols.md 5.3-5.5).

Serves any ``/v<major>.<minor>/`` prefix, so point the provider at ``f"{emu.url}/v21.0"``
(:attr:`MetaEmulator.base`). Bearer tokens map to the phone-number ids (and WABAs) they may use.
Errors use the Graph envelope ``{"error": {"message","type","code","error_subcode","fbtrace_id"}}``:
an unknown or wrong token is 401/190, an id the token cannot see 400/100 (subcode 33), a bad send
400/100, an unknown wamid on mark-as-read 400/131009.

State: ``phone_numbers[pnid]`` (Graph fields), ``wabas[waba_id]`` (list of pnids),
``sent`` (payloads with their wamid), ``read`` (wamids marked read), ``tokens[token]`` (set of ids).
"""
from __future__ import annotations

import base64
import json
import re
import secrets
import time

from ._server import Emulator, HttpError, Reply, Request
from .signing import meta_signature

V = r"/v\d+\.\d+"
WA_ID = re.compile(r"\+?[1-9]\d{6,14}\Z")
MAX_TEXT = 4096


def _wamid() -> str:
    return "wamid." + base64.b64encode(secrets.token_bytes(24)).decode().rstrip("=")


def _trace() -> str:
    return "A" + secrets.token_urlsafe(16)


class MetaEmulator(Emulator):
    name = "meta"
    version = "v21.0"

    def __init__(self):
        self.phone_numbers: dict[str, dict] = {}
        self.wabas: dict[str, list[str]] = {}
        self.tokens: dict[str, set[str]] = {}
        self.sent: list[dict] = []
        self.read: list[str] = []
        self.inbound_ids: set[str] = set()
        super().__init__()
        self.waba_id = "102290129340398"
        self.phone_number_id = self.add_number("+1 555-078-3881", "Converse Test", self.waba_id)
        self.access_token = self.add_token(self.phone_number_id, self.waba_id)
        self.app_secret = secrets.token_hex(16)
        self.verify_token = secrets.token_urlsafe(12)

    @property
    def base(self) -> str:
        """The Graph base URL (with version) to configure as ``endpoints.meta``."""
        return f"{self.url}/{self.version}"

    @property
    def creds(self) -> dict:
        return {"access_token": self.access_token, "phone_number_id": self.phone_number_id,
                "app_secret": self.app_secret, "verify_token": self.verify_token}

    # ----- state helpers -------------------------------------------------------------------
    def add_number(self, display: str, verified_name: str, waba_id: str | None = None) -> str:
        pnid = str(106540352242922 + len(self.phone_numbers))
        with self.lock:
            self.phone_numbers[pnid] = {
                "id": pnid, "display_phone_number": display, "verified_name": verified_name,
                "quality_rating": "GREEN", "code_verification_status": "VERIFIED",
                "status": "CONNECTED", "name_status": "APPROVED",
                "platform_type": "CLOUD_API", "throughput": {"level": "STANDARD"}}
            if waba_id:
                self.wabas.setdefault(waba_id, []).append(pnid)
        return pnid

    def add_token(self, *ids: str) -> str:
        token = "EAAG" + secrets.token_urlsafe(40)
        with self.lock:
            self.tokens[token] = set(ids)
        return token

    def add_inbound(self, wamid: str | None = None) -> str:
        """Register an inbound message id (so mark-as-read accepts it); returns it."""
        wamid = wamid or _wamid()
        with self.lock:
            self.inbound_ids.add(wamid)
        return wamid

    # ----- Meta -> you: webhook deliveries (protocols.md 5.2) -----------------------------
    def _envelope(self, value: dict) -> dict:
        row = self.phone_numbers[self.phone_number_id]
        value = dict({"messaging_product": "whatsapp", "metadata": {
            "display_phone_number": re.sub(r"\D", "", row["display_phone_number"]),
            "phone_number_id": self.phone_number_id}}, **value)
        return {"object": "whatsapp_business_account",
                "entry": [{"id": self.waba_id, "changes": [{"field": "messages", "value": value}]}]}

    def inbound_text(self, text: str, *, from_: str = "16505551234", name: str = "Sheena Nelson",
                     wamid: str | None = None) -> tuple[dict, str]:
        """``(payload, wamid)`` of an inbound text message; the wamid becomes markable as read.
        Reuse ``wamid`` to emulate Meta's redelivery of the same message."""
        wamid = self.add_inbound(wamid)
        return self._envelope({
            "contacts": [{"profile": {"name": name}, "wa_id": from_}],
            "messages": [{"from": from_, "id": wamid, "timestamp": str(int(time.time())),
                          "type": "text", "text": {"body": text}}]}), wamid

    def status_update(self, wamid: str, status: str, *, recipient: str = "16505551234",
                      opaque: str | None = None) -> dict:
        """A ``statuses[]`` delivery (sent/delivered/read/failed) for an outbound wamid;
        ``opaque`` echoes ``biz_opaque_callback_data`` as Meta does."""
        entry = {"id": wamid, "status": status, "timestamp": str(int(time.time())),
                 "recipient_id": recipient}
        if opaque is not None:
            entry["biz_opaque_callback_data"] = opaque
        if status == "failed":
            entry["errors"] = [{"code": 131047, "title": "Re-engagement message",
                                "message": "Re-engagement message",
                                "error_data": {"details": "More than 24 hours have passed"}}]
        return self._envelope({"statuses": [entry]})

    def signed(self, payload: dict | bytes) -> tuple[bytes, dict]:
        """``(raw body, headers)`` as Meta posts it: compact JSON with non-ASCII escaped (Meta
        signs that escaped form), X-Hub-Signature-256 over exactly those bytes."""
        body = payload if isinstance(payload, bytes) else json.dumps(
            payload, separators=(",", ":"), ensure_ascii=True).encode()
        return body, {"X-Hub-Signature-256": meta_signature(self.app_secret, body),
                      "Content-Type": "application/json"}

    def verification_params(self, verify_token: str | None = None,
                            challenge: str = "1158201444") -> dict:
        """Query parameters of Meta's subscription handshake (GET)."""
        return {"hub.mode": "subscribe", "hub.verify_token": verify_token or self.verify_token,
                "hub.challenge": challenge}

    def sent_texts(self) -> list[tuple[str, str]]:
        with self.lock:
            return [(m["to"], m["text"]["body"]) for m in self.sent if m.get("type") == "text"]

    # ----- HTTP ----------------------------------------------------------------------------
    def setup_routes(self) -> None:
        self.route("GET", V + r"/(?P<id>\d+)", "node.get", self._get_node)
        self.route("GET", V + r"/(?P<id>\d+)/phone_numbers", "waba.phone_numbers", self._list)
        self.route("POST", V + r"/(?P<id>\d+)/messages", "messages", self._messages)

    def authenticate(self, req: Request) -> None:
        if not req.bearer or req.bearer not in self.tokens:
            raise HttpError(401, "Invalid OAuth access token - Cannot parse access token",
                            type="OAuthException", code=190)
        if req.match.get("id") not in self.tokens[req.bearer]:
            raise HttpError(400, f"Unsupported {req.method.lower()} request. Object with ID "
                            f"'{req.match.get('id')}' does not exist, cannot be loaded due to "
                            "missing permissions, or does not support this operation. Please "
                            "read the Graph API documentation at "
                            "https://developers.facebook.com/docs/graph-api",
                            type="GraphMethodException", code=100, error_subcode=33)

    def error_body(self, status: int, message: str, extra: dict) -> dict:
        code = extra.get("code") or {429: 130429, 500: 1, 503: 2}.get(status, status)
        err = {"message": message, "type": extra.get("type", "OAuthException"), "code": code,
               "fbtrace_id": _trace()}
        if "error_subcode" in extra:
            err["error_subcode"] = extra["error_subcode"]
        return {"error": err}

    def _fields(self, req: Request, row: dict) -> dict:
        wanted = [f for f in req.params.get("fields", "").split(",") if f]
        return {k: v for k, v in row.items() if not wanted or k in wanted or k == "id"}

    def _get_node(self, req: Request) -> Reply:
        row = self.phone_numbers.get(req.match["id"])
        if row is None:                   # a WABA id: Graph answers with its basic fields
            return Reply(200, {"id": req.match["id"], "name": "Converse WABA"})
        return Reply(200, self._fields(req, row))

    def _list(self, req: Request) -> Reply:
        ids = self.wabas.get(req.match["id"], [])
        return Reply(200, {"data": [self._fields(req, self.phone_numbers[i]) for i in ids],
                           "paging": {"cursors": {"before": "QVFI", "after": "QVFI"}}})

    def _messages(self, req: Request) -> Reply:
        body = req.json()
        if not isinstance(body, dict):
            raise HttpError(400, "(#100) Invalid parameter", code=100)
        if body.get("messaging_product") != "whatsapp":
            raise HttpError(400, "(#100) The parameter messaging_product is required.", code=100)
        if body.get("status") == "read":
            return self._mark_read(body)
        to = body.get("to")
        if not isinstance(to, str) or not WA_ID.match(to):
            raise HttpError(400, "(#100) Invalid parameter", code=100,
                            error_subcode=2494010)
        if body.get("type", "text") != "text":
            raise HttpError(400, "(#131051) Unsupported message type", code=131051)
        text = body.get("text")
        text_body = text.get("body") if isinstance(text, dict) else None
        if not isinstance(text_body, str) or not text_body:
            raise HttpError(400, "(#100) The parameter text['body'] is required.", code=100)
        if len(text_body) > MAX_TEXT:
            raise HttpError(400, "(#100) Param text['body'] must be at most 4096 characters "
                            "long.", code=100)
        wamid = _wamid()
        self.sent.append(dict(body, id=wamid, phone_number_id=req.match["id"]))
        wa_id = to.removeprefix("+")
        return Reply(200, {"messaging_product": "whatsapp",
                           "contacts": [{"input": to, "wa_id": wa_id}],
                           "messages": [{"id": wamid}]})

    def _mark_read(self, body: dict) -> Reply:
        wamid = body.get("message_id")
        if wamid not in self.inbound_ids:
            raise HttpError(400, "(#131009) Parameter value is not valid", code=131009)
        self.read.append(wamid)
        return Reply(200, {"success": True})
