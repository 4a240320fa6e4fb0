"""The notify context: notifications to a user over email, web push and an in-app inbox, with per-user
channel preferences, quiet hours, dedupe, retries and a delivery log (docs/notify.md)."""
