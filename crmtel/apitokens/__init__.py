"""API tokens: what an integration sends as ``Authorization: Bearer`` instead of a browser session."""
