"""Event delivery from the outbox: Server-Sent Events, signed webhooks and a Redis Streams relay, plus the change
feeds that turn what the HTTP engines do on their own into the same events the embedded engine emits."""
