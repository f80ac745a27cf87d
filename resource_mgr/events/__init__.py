"""Events to BSS and IOM: an outbox written in the caller's transaction, webhook subscriptions,
and delivery jobs (at least once, in order per order_ref, signed). See docs/api.md."""
