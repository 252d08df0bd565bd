"""crmtel: telephony integration between Asterisk and a sales CRM."""

__version__ = "0.1.0"
