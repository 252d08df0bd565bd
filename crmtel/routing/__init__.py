"""Routing of inbound calls: pure rules, the FastAGI and HTTP route servers, and ``route explain``."""
