"""The web UI: server-rendered pages (Jinja2) with small ES modules that call the JSON APIs (docs/ui.md)."""
