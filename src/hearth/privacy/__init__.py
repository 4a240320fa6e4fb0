"""The privacy context: a user's data across every context, exported as one archive or erased
(docs/privacy.md)."""
