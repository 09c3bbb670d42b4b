"""Transports hand rendered messages to the world: outbox (.eml files), SMTP, SendGrid."""
