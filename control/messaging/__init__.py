"""Messaging channels: WhatsApp (Meta Cloud API) and SMS (Twilio).

Pieces (each small, each testable alone):

* :mod:`.wire` -- sans-IO: signature checks and webhook parsing into typed events;
* :mod:`.webhooks` -- the handlers the webhook registry dispatches to (store, then answer);
* :mod:`.repo` -- conversations, inbox and outbox rows (migration 2), compare-and-set moves;
* :mod:`.worker` -- the conversation worker (order per conversation, leases across nodes);
* :mod:`.targets` -- one turn against the channel's agent (text mode) or flow;
* :mod:`.outbox` -- the sender: retries, backoff, dead letters, reconciliation after a crash;
* :mod:`.service` -- both loops in the app's nursery; :mod:`.api` -- the messages route.

Guarantees
----------
In: at-least-once from the provider, deduplicated here. A webhook is answered 200 only after its
messages are committed (unique index on the provider's id: ``wamid`` / ``MessageSid``); a
redelivery is acknowledged and ignored; a bad signature is 403 before anything is parsed; a
signed payload we cannot read is logged (reason and size, never the content) and acknowledged.

Processing: each stored inbound message is processed once: its ``processed`` mark and its reply
rows commit together. A crash before that commit re-runs the agent for it after restart (the
agent may see a message twice; the user never gets two sets of replies).

Out: each reply has an idempotency key (``<inbound id>.<n>``) and moves ``pending -> sending ->
sent | dead``. Retries (exponential backoff with jitter, honouring Retry-After) happen only when
the provider answered "no" (429, 5xx); other 4xx are dead at once. When the outcome of a send is
unknown (timeout, connection lost, or the process died mid-send and the lease expired), the send
is reconciled, not repeated: Twilio -- look the message up (same number pair and body, sid not yet
recorded): found means sent; Meta -- no lookup exists: dead-lettered as ``unconfirmed`` unless a
status webhook carrying the key (``biz_opaque_callback_data``) proves it was sent. Net: SMS
exactly-once (residual window documented in :mod:`.outbox`), WhatsApp at-most-once under
crashes/timeouts and exactly-once otherwise.

Inactive (or setup/error) channels: inbound messages are stored as ``skipped`` and never answered,
so re-activation does not flood old conversations. Messages already queued when a channel is
deactivated are skipped too.
"""
