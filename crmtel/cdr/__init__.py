"""Asterisk's own call records (CDR): reading them, and backfilling the calls crmtel could not follow live."""
