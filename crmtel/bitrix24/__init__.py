"""Bitrix24 as a server-side local application: OAuth 2, telephony.externalCall.*, install and click-to-call events."""
