"""Subscribers of the status page: e-mail with double opt-in, webhooks, signed links."""
