"""Callback tasks: opened by missed calls, closed by a later answered call or by hand; listed for the page."""
