"""Twilio REST 2010-04-01 emulator: Accounts, IncomingPhoneNumbers, Messages, Calls update
(protocols.md 2.4).

Shapes follow Twilio's documented JSON (snake_case fields, list pages with ``next_page_uri``),
errors Twilio's ``{"code","message","more_info","status"}`` body. Basic auth is
``AccountSid:AuthToken``; another account's resources answer 404 like Twilio.

State (read it under ``emu.lock`` or through the helpers):
``accounts[sid] = {"auth_token", "friendly_name", "status"}``, ``numbers[pn_sid] = <number JSON>``,
``messages`` (list of message JSON, oldest first), ``call_updates`` (live-call updates received).
"""
from __future__ import annotations

import re
import secrets
from email.utils import formatdate

from ._server import Emulator, HttpError, Reply, Request
from .signing import twilio_signature

API = "/2010-04-01"
ACC = API + r"/Accounts/(?P<account>AC[0-9a-f]{32})"
E164 = re.compile(r"\+[1-9]\d{6,14}\Z")
MAX_BODY_CHARS = 1600

_NUMBER_FIELDS = {"VoiceUrl": "voice_url", "VoiceMethod": "voice_method",
                  "VoiceFallbackUrl": "voice_fallback_url", "VoiceApplicationSid":
                  "voice_application_sid", "SmsUrl": "sms_url", "SmsMethod": "sms_method",
                  "SmsFallbackUrl": "sms_fallback_url", "SmsApplicationSid": "sms_application_sid",
                  "StatusCallback": "status_callback", "StatusCallbackMethod":
                  "status_callback_method", "FriendlyName": "friendly_name"}
_URL_KEYS = {"voice_url", "voice_fallback_url", "sms_url", "sms_fallback_url", "status_callback"}
_METHOD_KEYS = {"voice_method", "sms_method", "status_callback_method"}


def _sid(prefix: str) -> str:
    return prefix + secrets.token_hex(16)


def _now() -> str:
    return formatdate(usegmt=False)      # RFC 2822, as Twilio dates are


class TwilioEmulator(Emulator):
    name = "twilio"

    def __init__(self):
        self.accounts: dict[str, dict] = {}
        self.numbers: dict[str, dict] = {}
        self.messages: list[dict] = []
        self.call_updates: list[dict] = []     # {"sid", "account_sid", "twiml", "status"}
        super().__init__()
        # A ready account with one voice+sms number and one voice-only number.
        self.account_sid, self.auth_token = self.add_account("Converse test account")
        self.number_sid = self.add_number(self.account_sid, "+15005550006")
        self.add_number(self.account_sid, "+15005550007", sms=False)

    @property
    def creds(self) -> dict:
        """Credentials of the default account, as the Twilio provider module expects them."""
        return {"account_sid": self.account_sid, "auth_token": self.auth_token}

    # ----- state helpers -------------------------------------------------------------------
    def add_account(self, friendly_name: str = "", status: str = "active") -> tuple[str, str]:
        sid, token = _sid("AC"), secrets.token_hex(16)
        with self.lock:
            self.accounts[sid] = {"auth_token": token, "friendly_name": friendly_name,
                                  "status": status}
        return sid, token

    def add_number(self, account_sid: str, phone_number: str, *, voice: bool = True,
                   sms: bool = True) -> str:
        sid = _sid("PN")
        with self.lock:
            self.numbers[sid] = {
                "sid": sid, "account_sid": account_sid, "phone_number": phone_number,
                "friendly_name": phone_number, "voice_url": "", "voice_method": "POST",
                "voice_fallback_url": "", "voice_application_sid": "", "sms_url": "",
                "sms_method": "POST", "sms_fallback_url": "", "sms_application_sid": "",
                "status_callback": "", "status_callback_method": "POST", "trunk_sid": None,
                "capabilities": {"voice": voice, "sms": sms, "mms": sms, "fax": False},
                "status": "in-use", "date_created": _now(), "date_updated": _now(),
                "api_version": "2010-04-01",
                "uri": f"{API}/Accounts/{account_sid}/IncomingPhoneNumbers/{sid}.json"}
        return sid

    def number(self, phone_number: str) -> dict:
        """A copy of the number's JSON, looked up by E.164 number."""
        with self.lock:
            for n in self.numbers.values():
                if n["phone_number"] == phone_number:
                    return dict(n)
        raise KeyError(phone_number)

    def sent(self) -> list[dict]:
        with self.lock:
            return [dict(m) for m in self.messages]

    def message_status(self, sid: str, status: str, *, error_code: str | None = None
                       ) -> tuple[str, dict, dict] | None:
        """Move a sent message to ``status`` (sent, delivered, undelivered, failed, ...) and
        return the signed status callback Twilio would post, as ``(url, params, headers)``, or
        None when the message was sent without a StatusCallback."""
        with self.lock:
            message = next(m for m in self.messages if m["sid"] == sid)
            message.update(status=status, error_code=error_code, date_updated=_now())
            url = message.get("status_callback")
            if not url:
                return None
            params = {"MessageSid": sid, "SmsSid": sid, "MessageStatus": status,
                      "SmsStatus": status, "AccountSid": message["account_sid"],
                      "From": message["from"], "To": message["to"], "ApiVersion": "2010-04-01"}
            if error_code:
                params["ErrorCode"] = error_code
        return (url, *self.signed(url, params))

    # ----- Twilio -> you: webhooks as Twilio would send them (protocols.md 1.1, 2.3) --------
    def signed(self, public_url: str, params: dict[str, str]) -> tuple[dict, dict]:
        """``(form params, headers)`` for a POST to ``public_url``, signed with the account's
        auth token exactly as Twilio signs (over the public URL the number is configured with,
        which is not the 127.0.0.1 address a test actually posts to)."""
        return params, {"X-Twilio-Signature": twilio_signature(self.auth_token, public_url, params),
                        "Content-Type": "application/x-www-form-urlencoded"}

    def voice_webhook(self, public_url: str, *, from_: str = "+14155550123",
                      to: str = "+15005550006", call_sid: str | None = None) -> tuple[dict, dict]:
        """An inbound-call webhook (CallStatus ringing)."""
        return self.signed(public_url, {
            "CallSid": call_sid or _sid("CA"), "AccountSid": self.account_sid, "From": from_,
            "To": to, "Caller": from_, "Called": to, "CallStatus": "ringing",
            "Direction": "inbound", "ApiVersion": "2010-04-01", "FromCountry": "US",
            "ToCountry": "US"})

    def sms_webhook(self, public_url: str, *, body: str, from_: str = "+14155550123",
                    to: str = "+15005550006", message_sid: str | None = None) -> tuple[dict, dict]:
        """An inbound SMS webhook; reuse ``message_sid`` to emulate a redelivery."""
        sid = message_sid or _sid("SM")
        return self.signed(public_url, {
            "MessageSid": sid, "SmsSid": sid, "SmsMessageSid": sid,
            "AccountSid": self.account_sid, "From": from_, "To": to, "Body": body,
            "NumMedia": "0", "NumSegments": "1", "SmsStatus": "received",
            "ApiVersion": "2010-04-01", "FromCountry": "US", "ToCountry": "US"})

    # ----- HTTP ----------------------------------------------------------------------------
    def setup_routes(self) -> None:
        self.route("GET", ACC + r"\.json", "accounts.fetch", self._fetch_account)
        self.route("GET", ACC + r"/IncomingPhoneNumbers\.json", "numbers.list", self._list_numbers)
        self.route("GET", ACC + r"/IncomingPhoneNumbers/(?P<pn>PN[0-9a-f]{32})\.json",
                   "numbers.fetch", self._fetch_number)
        self.route("POST", ACC + r"/IncomingPhoneNumbers/(?P<pn>PN[0-9a-f]{32})\.json",
                   "numbers.update", self._update_number)
        self.route("POST", ACC + r"/Messages\.json", "messages.create", self._create_message)
        self.route("GET", ACC + r"/Messages\.json", "messages.list", self._list_messages)
        self.route("POST", ACC + r"/Calls/(?P<ca>CA[0-9a-f]{32})\.json", "calls.update",
                   self._update_call)
        self.route("GET", ACC + r"/Messages/(?P<sm>(SM|MM)[0-9a-f]{32})\.json", "messages.fetch",
                   self._fetch_message)

    def authenticate(self, req: Request) -> None:
        user, password = req.auth or ("", "")
        account = self.accounts.get(user)
        if account is None or not secrets.compare_digest(account["auth_token"], password):
            raise HttpError(401, "Authenticate", code=20003)
        if req.match.get("account") != user:
            raise HttpError(404, f"The requested resource {req.path} was not found", code=20404)

    def error_body(self, status: int, message: str, extra: dict) -> dict:
        code = extra.get("code") or {401: 20003, 404: 20404, 429: 20429}.get(status, status)
        return {"code": code, "message": message,
                "more_info": f"https://www.twilio.com/docs/errors/{code}", "status": status}

    def _fetch_account(self, req: Request) -> Reply:
        sid = req.match["account"]
        a = self.accounts[sid]
        return Reply(200, {"sid": sid, "friendly_name": a["friendly_name"], "status": a["status"],
                           "type": "Full", "owner_account_sid": sid, "auth_token": a["auth_token"],
                           "date_created": _now(), "date_updated": _now(),
                           "uri": f"{API}/Accounts/{sid}.json"})

    def _page(self, req: Request, key: str, items: list[dict], base: str) -> Reply:
        size = _int(req.params.get("PageSize"), 50, 1, 1000)
        page = _int(req.params.get("Page"), 0, 0, 10**6)
        chunk = items[page * size:(page + 1) * size]
        more = (page + 1) * size < len(items)
        extra = "".join(f"&{k}={v}" for k, v in req.params.items() if k not in ("PageSize", "Page"))
        uri = lambda p: f"{base}?PageSize={size}&Page={p}{extra}"   # noqa: E731
        return Reply(200, {key: chunk, "page": page, "page_size": size, "start": page * size,
                           "end": page * size + max(len(chunk) - 1, 0),
                           "first_page_uri": uri(0), "uri": uri(page),
                           "next_page_uri": uri(page + 1) if more else None,
                           "previous_page_uri": uri(page - 1) if page else None})

    def _list_numbers(self, req: Request) -> Reply:
        acc = req.match["account"]
        items = [n for n in self.numbers.values() if n["account_sid"] == acc
                 and req.params.get("PhoneNumber", n["phone_number"]) == n["phone_number"]]
        return self._page(req, "incoming_phone_numbers", items,
                          f"{API}/Accounts/{acc}/IncomingPhoneNumbers.json")

    def _own_number(self, req: Request) -> dict:
        n = self.numbers.get(req.match["pn"])
        if n is None or n["account_sid"] != req.match["account"]:
            raise HttpError(404, f"The requested resource {req.path} was not found", code=20404)
        return n

    def _fetch_number(self, req: Request) -> Reply:
        return Reply(200, self._own_number(req))

    def _update_number(self, req: Request) -> Reply:
        n = self._own_number(req)
        changes = {}
        for param, value in req.form.items():
            key = _NUMBER_FIELDS.get(param)
            if key is None:
                continue                 # Twilio ignores parameters it does not know
            if key in _URL_KEYS and value and not re.match(r"https?://[^\s/]+", value):
                raise HttpError(400, f"{param} is not valid.", code=21502)
            if key in _METHOD_KEYS and value.upper() not in ("GET", "POST"):
                raise HttpError(400, f"{param} must be GET or POST", code=21403)
            changes[key] = value.upper() if key in _METHOD_KEYS else value
        n.update(changes, date_updated=_now())
        return Reply(200, n)

    def _create_message(self, req: Request) -> Reply:
        form, acc = req.form, req.match["account"]
        to, sender, body = form.get("To", ""), form.get("From", ""), form.get("Body")
        if not body:
            raise HttpError(400, "Message body is required.", code=21602)
        if len(body) > MAX_BODY_CHARS:
            raise HttpError(400, "The concatenated message body exceeds the 1600 character limit.",
                            code=21617)
        if not E164.match(to.removeprefix("whatsapp:")):
            raise HttpError(400, f"Invalid 'To' Phone Number: {to}", code=21211)
        own = [n for n in self.numbers.values() if n["account_sid"] == acc
               and n["phone_number"] == sender.removeprefix("whatsapp:")]
        if not own or not own[0]["capabilities"].get("sms"):
            raise HttpError(400, f"The From phone number {sender} is not a valid, SMS-capable "
                            "inbound phone number or short code for your account.", code=21606)
        sid = _sid("SM")
        message = {"sid": sid, "account_sid": acc, "from": sender, "to": to, "body": body,
                   "status": "queued", "direction": "outbound-api", "num_segments": "1",
                   "num_media": "0", "price": None, "price_unit": "USD", "error_code": None,
                   "error_message": None, "api_version": "2010-04-01",
                   "messaging_service_sid": None, "date_created": _now(),
                   "date_updated": _now(), "date_sent": None,
                   "status_callback": form.get("StatusCallback"),
                   "uri": f"{API}/Accounts/{acc}/Messages/{sid}.json"}
        self.messages.append(message)
        return Reply(201, {k: v for k, v in message.items() if k != "status_callback"})

    def _update_call(self, req: Request) -> Reply:
        """Live-call update (new TwiML, or Status=completed); every call counts as live."""
        form, acc, sid = req.form, req.match["account"], req.match["ca"]
        update = {"sid": sid, "account_sid": acc, "twiml": form.get("Twiml"),
                  "status": form.get("Status")}
        self.call_updates.append(update)
        return Reply(200, {"sid": sid, "account_sid": acc, "status": update["status"] or
                           "in-progress", "api_version": "2010-04-01", "date_updated": _now(),
                           "uri": f"{API}/Accounts/{acc}/Calls/{sid}.json"})

    def _list_messages(self, req: Request) -> Reply:
        acc, p = req.match["account"], req.params
        items = [m for m in reversed(self.messages) if m["account_sid"] == acc
                 and p.get("To", m["to"]) == m["to"] and p.get("From", m["from"]) == m["from"]]
        return self._page(req, "messages", items, f"{API}/Accounts/{acc}/Messages.json")

    def _fetch_message(self, req: Request) -> Reply:
        for m in self.messages:
            if m["sid"] == req.match["sm"] and m["account_sid"] == req.match["account"]:
                return Reply(200, m)
        raise HttpError(404, f"The requested resource {req.path} was not found", code=20404)


def _int(value: str | None, default: int, lo: int, hi: int) -> int:
    try:
        return min(max(int(value), lo), hi) if value is not None else default
    except ValueError:
        return default
