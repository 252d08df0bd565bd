"""Several crmtel nodes: one leader per PBX (PostgreSQL advisory locks, fenced writes), live events through Redis."""
