"""The call's result in one click: a configurable list of codes, stored with the call."""
