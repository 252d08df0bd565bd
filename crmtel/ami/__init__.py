"""Asterisk Manager Interface only: framing, escapes, typed events, the connection and the client."""
