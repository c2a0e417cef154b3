"""Plivo REST v1 emulator: Account, Number, Application, Call transfer (protocols.md 3.6).

Basic auth ``auth_id:auth_token`` on ``/v1/Account/{auth_id}/...`` (trailing slashes, JSON bodies).
Errors are ``{"api_id": ..., "error": "<words>"}`` with the documented status codes (the exact
wording of Plivo's 401 is not documented in protocols.md; ours is plain). Deleting an application
unlinks its numbers (they fall back to the account's default application).

State: ``accounts[auth_id] = {"auth_token", "name"}``, ``numbers[number] = <number JSON>``
(number without ``+``), ``applications[app_id] = <application JSON>``, ``live_calls[call_uuid] =
{"account", "from", "to"}`` (:meth:`PlivoEmulator.add_call`; :meth:`answer_webhook` adds its call),
``transfers`` (one dict per Transfer Call request: the ``aleg_url`` and what fetching it gave).

Transfer Call (``POST /Call/{uuid}/`` with ``legs=aleg``): like Plivo, the emulator fetches the
``aleg_url`` with a V3-signed POST of the call's parameters before answering (synchronously, so a
test sees the XML as soon as the SDK call returns). The URL is the public one; :meth:`forward`
says where a public base really listens on 127.0.0.1 (the signature stays over the public URL).
"""
from __future__ import annotations

import re
import secrets
import string
import urllib.error
import urllib.parse
import urllib.request
import uuid

from ._server import Emulator, HttpError, Reply, Request
from .signing import plivo_v3_signature

ACC = r"/v1/Account/(?P<account>[MS]A[A-Z0-9]{18})"
URL = re.compile(r"https?://[^\s/]+")
FETCH_TIMEOUT_S = 10.0         # Plivo's own read timeout on callbacks is longer (40 s)
MAX_XML = 100_000              # Plivo's cap on an XML answer
_APP_FIELDS = ("answer_url", "answer_method", "hangup_url", "hangup_method",
               "fallback_answer_url", "fallback_method", "message_url", "message_method",
               "default_number_app", "default_endpoint_app", "log_incoming_messages", "public_uri")


def _auth_id() -> str:
    return "MA" + "".join(secrets.choice(string.ascii_uppercase + string.digits)
                          for _ in range(18))


class PlivoEmulator(Emulator):
    name = "plivo"

    def __init__(self):
        self.accounts: dict[str, dict] = {}
        self.numbers: dict[str, dict] = {}
        self.applications: dict[str, dict] = {}
        self.live_calls: dict[str, dict] = {}
        self.transfers: list[dict] = []
        self._forward: dict[str, str] = {}
        super().__init__()
        self.auth_id, self.auth_token = self.add_account("Converse Plivo test")
        self.add_number(self.auth_id, "14155550100")
        self.add_number(self.auth_id, "14155550101", sms=False)

    @property
    def creds(self) -> dict:
        return {"auth_id": self.auth_id, "auth_token": self.auth_token}

    # ----- state helpers -------------------------------------------------------------------
    def add_account(self, name: str = "") -> tuple[str, str]:
        auth_id, token = _auth_id(), secrets.token_urlsafe(30)
        with self.lock:
            self.accounts[auth_id] = {"auth_token": token, "name": name}
        return auth_id, token

    def add_number(self, auth_id: str, number: str, *, sms: bool = True) -> str:
        number = number.lstrip("+")
        with self.lock:
            self.numbers[number] = {
                "number": number, "account": auth_id, "alias": None, "application": None,
                "voice_enabled": True, "sms_enabled": sms, "mms_enabled": False,
                "number_type": "local", "region": "California, UNITED STATES",
                "carrier": "Plivo", "added_on": "2026-01-01", "monthly_rental_rate": "0.50000",
                "sub_account": None, "resource_uri": f"/v1/Account/{auth_id}/Number/{number}/"}
        return number

    def application_of(self, number: str) -> dict | None:
        """A copy of the application a number is linked to (None when unlinked)."""
        with self.lock:
            n = self.numbers[number.lstrip("+")]
            app_id = (n["application"] or "").rstrip("/").rsplit("/", 1)[-1]
            app = self.applications.get(app_id)
            return dict(app) if app else None

    def add_call(self, call_uuid: str | None = None, *, from_: str = "14155550123",
                 to: str = "14155550100", auth_id: str | None = None) -> str:
        """Make ``call_uuid`` a live call of the account (default: the first one)."""
        call_uuid = call_uuid or str(uuid.uuid4())
        with self.lock:
            self.live_calls[call_uuid] = {"account": auth_id or self.auth_id, "from": from_,
                                          "to": to}
        return call_uuid

    def forward(self, public_base: str, local_base: str) -> None:
        """Fetch URLs under ``public_base`` (e.g. PUBLIC_URL) from ``local_base`` instead."""
        with self.lock:
            self._forward[public_base.rstrip("/")] = local_base.rstrip("/")

    # ----- Plivo -> you: the answer-URL request (protocols.md 3.1, 3.5) ------------------
    def answer_webhook(self, public_url: str, *, from_: str = "14155550123",
                       to: str = "14155550100", call_uuid: str | None = None,
                       nonce: str | None = None) -> tuple[dict, dict]:
        """``(form params, headers)`` of an inbound-call answer request signed with V3 (the same
        token signs V3 and Ma-V3 here: the emulated account is a main account). Reuse ``nonce``
        to emulate a replay."""
        params = {"CallUUID": self.add_call(call_uuid, from_=from_, to=to), "From": from_,
                  "To": to, "CallStatus": "ringing", "Direction": "inbound", "Event": "StartApp"}
        nonce = nonce or secrets.token_hex(10)
        signature = plivo_v3_signature(self.auth_token, public_url, nonce, params, "POST")
        return params, {"X-Plivo-Signature-V3": signature, "X-Plivo-Signature-Ma-V3": signature,
                        "X-Plivo-Signature-V3-Nonce": nonce,
                        "Content-Type": "application/x-www-form-urlencoded"}

    # ----- HTTP ----------------------------------------------------------------------------
    def setup_routes(self) -> None:
        self.route("GET", ACC + r"/", "account.get", self._account)
        self.route("GET", ACC + r"/Number/", "numbers.list", self._list_numbers)
        self.route("GET", ACC + r"/Number/(?P<number>\d+)/", "numbers.get", self._get_number)
        self.route("POST", ACC + r"/Number/(?P<number>\d+)/", "numbers.update",
                   self._update_number)
        self.route("GET", ACC + r"/Application/", "applications.list", self._list_apps)
        self.route("POST", ACC + r"/Application/", "applications.create", self._create_app)
        self.route("GET", ACC + r"/Application/(?P<app>\d+)/", "applications.get", self._get_app)
        self.route("POST", ACC + r"/Application/(?P<app>\d+)/", "applications.update",
                   self._update_app)
        self.route("DELETE", ACC + r"/Application/(?P<app>\d+)/", "applications.delete",
                   self._delete_app)
        self.route("POST", ACC + r"/Call/(?P<call>[^/]+)/", "calls.transfer", self._transfer)

    def authenticate(self, req: Request) -> None:
        user, password = req.auth or ("", "")
        account = self.accounts.get(user)
        if account is None or not secrets.compare_digest(account["auth_token"], password):
            raise HttpError(401, "Authentication failed: invalid auth_id or auth_token")
        if req.match.get("account") != user:
            raise HttpError(403, "Not authorized to access this account")

    def error_body(self, status: int, message: str, extra: dict) -> dict:
        return {"api_id": str(uuid.uuid4()), "error": message}

    def _ok(self, status: int, body: dict) -> Reply:
        return Reply(status, dict(body, api_id=str(uuid.uuid4())))

    def _account(self, req: Request) -> Reply:
        auth_id = req.match["account"]
        return self._ok(200, {"account_type": "standard", "address": "", "auth_id": auth_id,
                              "auto_recharge": False, "billing_mode": "prepaid",
                              "cash_credits": "10.00000", "city": "",
                              "name": self.accounts[auth_id]["name"],
                              "resource_uri": f"/v1/Account/{auth_id}/", "state": "",
                              "timezone": "America/Los_Angeles"})

    def _list(self, req: Request, rows: list[dict], path: str) -> Reply:
        limit = _int(req.params.get("limit"), 20)
        offset = _int(req.params.get("offset"), 0)
        if not 0 < limit <= 20 or offset < 0:
            raise HttpError(400, "limit must be 1..20 and offset >= 0")
        page = rows[offset:offset + limit]
        nxt = (f"{path}?limit={limit}&offset={offset + limit}"
               if offset + limit < len(rows) else None)
        prev = f"{path}?limit={limit}&offset={max(offset - limit, 0)}" if offset else None
        return self._ok(200, {"meta": {"limit": limit, "offset": offset,
                                       "total_count": len(rows), "next": nxt, "previous": prev},
                              "objects": page})

    def _list_numbers(self, req: Request) -> Reply:
        acc = req.match["account"]
        rows = [_public(n) for n in self.numbers.values() if n["account"] == acc]
        return self._list(req, rows, f"/v1/Account/{acc}/Number/")

    def _number(self, req: Request) -> dict:
        n = self.numbers.get(req.match["number"])
        if n is None or n["account"] != req.match["account"]:
            raise HttpError(404, "not found")
        return n

    def _get_number(self, req: Request) -> Reply:
        return self._ok(200, _public(self._number(req)))

    def _update_number(self, req: Request) -> Reply:
        n, body = self._number(req), req.json()
        if not isinstance(body, dict):
            raise HttpError(400, "invalid JSON body")
        if "app_id" in body:
            app = self.applications.get(str(body["app_id"]))
            if app is None or app["account"] != req.match["account"]:
                raise HttpError(404, "application not found")
            n["application"] = app["resource_uri"]
        if "alias" in body:
            n["alias"] = body["alias"]
        return self._ok(202, {"message": "changed"})

    def _list_apps(self, req: Request) -> Reply:
        acc, name = req.match["account"], req.params.get("app_name")
        rows = [_public(a) for a in self.applications.values() if a["account"] == acc
                and (name is None or a["app_name"] == name)]
        return self._list(req, rows, f"/v1/Account/{acc}/Application/")

    def _app(self, req: Request) -> dict:
        app = self.applications.get(req.match["app"])
        if app is None or app["account"] != req.match["account"]:
            raise HttpError(404, "not found")
        return app

    def _validated(self, body) -> dict:
        if not isinstance(body, dict):
            raise HttpError(400, "invalid JSON body")
        for key in ("answer_url", "hangup_url", "fallback_answer_url", "message_url"):
            if body.get(key) and not URL.match(str(body[key])):
                raise HttpError(400, f"{key} is not a valid URL")
        for key in ("answer_method", "hangup_method", "fallback_method", "message_method"):
            if body.get(key) and str(body[key]).upper() not in ("GET", "POST"):
                raise HttpError(400, f"{key} must be GET or POST")
        return {k: body[k] for k in _APP_FIELDS if k in body}

    def _create_app(self, req: Request) -> Reply:
        body = req.json()
        fields = self._validated(body)
        name = body.get("app_name")
        if not isinstance(name, str) or not name:
            raise HttpError(400, "app_name is mandatory")
        acc = req.match["account"]
        app_id = str(10_000_000_000_000_000 + len(self.applications) + secrets.randbelow(10**9))
        self.applications[app_id] = dict(
            {"answer_url": None, "answer_method": "POST", "hangup_url": None,
             "hangup_method": "POST", "fallback_answer_url": None, "fallback_method": "POST",
             "message_url": None, "message_method": "POST", "default_app": False,
             "default_endpoint_app": False, "enabled": True, "public_uri": False,
             "log_incoming_messages": True, "sub_account": None,
             "sip_uri": f"sip:{app_id}@app.plivo.com"},
            **fields, app_id=app_id, app_name=name, account=acc,
            resource_uri=f"/v1/Account/{acc}/Application/{app_id}/")
        return self._ok(201, {"app_id": app_id, "message": "created"})

    def _get_app(self, req: Request) -> Reply:
        return self._ok(200, _public(self._app(req)))

    def _update_app(self, req: Request) -> Reply:
        app = self._app(req)
        app.update(self._validated(req.json()))
        return self._ok(202, {"message": "changed"})

    def _delete_app(self, req: Request) -> Reply:
        app = self._app(req)
        del self.applications[app["app_id"]]
        for n in self.numbers.values():
            if n["application"] == app["resource_uri"]:
                n["application"] = None
        return Reply(204)


    # ----- Transfer Call ---------------------------------------------------------------------
    def _transfer(self, req: Request) -> Reply:
        call = self.live_calls.get(req.match["call"])
        if call is None or call["account"] != req.match["account"]:
            raise HttpError(404, "call not found")
        body = req.json()
        if not isinstance(body, dict) or body.get("legs") not in ("aleg", "bleg", "both"):
            raise HttpError(400, "legs must be aleg, bleg or both")
        if body["legs"] != "aleg":
            raise HttpError(400, "this emulator transfers the aleg only")
        url, method = body.get("aleg_url"), str(body.get("aleg_method") or "POST").upper()
        if not isinstance(url, str) or not URL.match(url):
            raise HttpError(400, "aleg_url is not a valid URL")
        if method != "POST":
            raise HttpError(400, "this emulator fetches aleg_url with POST only")
        status, xml = self._fetch(url, req.match["call"], call)
        self.transfers.append({"call_uuid": req.match["call"], "account": call["account"],
                               "legs": "aleg", "aleg_url": url, "aleg_method": method,
                               "status": status, "xml": xml})
        return self._ok(202, {"message": "call transferred"})

    def _fetch(self, url: str, call_uuid: str, call: dict) -> tuple[int | None, str]:
        """POST the call's parameters to ``url`` signed as Plivo signs (V3 + nonce); returns
        (HTTP status or None when unreachable, body text)."""
        params = {"CallUUID": call_uuid, "From": call["from"], "To": call["to"],
                  "CallStatus": "in-progress", "Direction": "inbound"}
        nonce = secrets.token_hex(10)
        token = self.accounts[call["account"]]["auth_token"]
        signature = plivo_v3_signature(token, url, nonce, params, "POST")
        real = url
        for public, local in self._forward.items():
            if url.startswith(public + "/"):
                real = local + url[len(public):]
        request = urllib.request.Request(
            real, data=urllib.parse.urlencode(params).encode(), method="POST", headers={
                "X-Plivo-Signature-V3": signature, "X-Plivo-Signature-Ma-V3": signature,
                "X-Plivo-Signature-V3-Nonce": nonce,
                "Content-Type": "application/x-www-form-urlencoded"})
        try:
            with urllib.request.urlopen(request, timeout=FETCH_TIMEOUT_S) as response:
                return response.status, response.read(MAX_XML).decode("utf-8", "replace")
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read(MAX_XML).decode("utf-8", "replace")
        except (OSError, ValueError):
            return None, ""


def _public(row: dict) -> dict:
    return {k: v for k, v in row.items() if k != "account"}


def _int(value: str | None, default: int) -> int:
    try:
        return int(value) if value is not None else default
    except ValueError:
        raise HttpError(400, f"not an integer: {value!r}") from None
