"""Dispatch systems out: alert transitions POSTed to webhook receivers (docs/webhooks.md)."""
