"""Notifications: events from the outbox (``vidgen.db.outbox``) delivered to the webhooks and
Apprise URLs in config.yaml, with retries, by a thread of their own that never holds up a worker.

``targets`` names the configured targets (the status page reads their state by key),
``messages`` turns an event into what is sent, ``send`` sends it, ``monitor`` notices what no
transaction causes (the queue running empty, attention episodes), and ``notifier`` runs it all.
Apprise is imported only when an Apprise target is used.
"""

__all__: list[str] = []
