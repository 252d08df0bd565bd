"""Asterisk Manager Interface: framing, connection, call tracking and persistence."""
