"""Connectors: carry crmtel's calls into outside CRMs through a transactional outbox."""
