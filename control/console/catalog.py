"""What the Add Channel wizard asks for: each provider's own field names and help text.

Field ``name`` is the credential key the API takes (``control/providers/*.credential_fields``);
``label`` is what the provider's own console calls it, so operators can copy across.
"""
from __future__ import annotations

import msgspec


class Field(msgspec.Struct, frozen=True):
    name: str
    label: str
    help: str
    secret: bool = False
    optional: bool = False
    placeholder: str = ""


class ProviderForm(msgspec.Struct, frozen=True):
    type: str            # channel type
    provider: str | None
    title: str
    blurb: str
    fields: tuple[Field, ...] = ()

    @property
    def key(self) -> str:
        return f"{self.type}:{self.provider or 'none'}"


_TWILIO = (
    Field("account_sid", "Account SID", "Twilio Console > Account Info; starts with AC.",
          placeholder="AC…"),
    Field("auth_token", "Auth Token", "Twilio Console > Account Info (click to reveal).",
          secret=True),
)

FORMS: tuple[ProviderForm, ...] = (
    ProviderForm("voice", "twilio", "Voice: Twilio", "Phone calls on a Twilio number.", _TWILIO),
    ProviderForm("voice", "plivo", "Voice: Plivo", "Phone calls on a Plivo number.", (
        Field("auth_id", "Auth ID", "Plivo Console > Overview; starts with MA or SA.",
              placeholder="MA…"),
        Field("auth_token", "Auth Token", "Plivo Console > Overview, next to the Auth ID.",
              secret=True),
    )),
    ProviderForm("voice", "exotel", "Voice: Exotel", "Phone calls on an ExoPhone (the webhook is "
                 "pasted into an Exotel flow by hand; the channel page shows the URL).", (
        Field("api_key", "API key", "Exotel Dashboard > Settings > API Settings."),
        Field("api_token", "API token", "Shown next to the API key.", secret=True),
        Field("account_sid", "Account SID", "Your Exotel account SID (API Settings)."),
        Field("subdomain", "Subdomain", "api.exotel.com (Singapore) or api.in.exotel.com (Mumbai).",
              placeholder="api.exotel.com"),
    )),
    ProviderForm("whatsapp", "meta", "WhatsApp: Meta Cloud API",
                 "A WhatsApp Business number through Meta's Cloud API.", (
        Field("access_token", "Permanent Access Token", "Business Settings > System users > "
              "Generate token (whatsapp_business_messaging permission).", secret=True),
        Field("phone_number_id", "Phone Number ID", "App Dashboard > WhatsApp > API Setup, under "
              "the number (not the phone number itself)."),
        Field("app_secret", "App Secret", "App Dashboard > App settings > Basic; used to check "
              "the signature of Meta's webhooks.", secret=True),
        Field("verify_token", "Verify Token", "Any string you choose; you paste the same one into "
              "Meta's webhook settings."),
    )),
    ProviderForm("sms", "twilio", "SMS: Twilio", "Text messages on a Twilio number.", _TWILIO),
    ProviderForm("web", None, "Web Widget", "The voice + chat widget on your own web pages."),
)

BY_KEY = {f.key: f for f in FORMS}
PROVIDER_TITLES = {"twilio": "Twilio", "plivo": "Plivo", "exotel": "Exotel", "meta": "Meta"}
