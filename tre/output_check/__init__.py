"""Output checking: disclosure-control rules, check reports, requests, reviews and releases."""
