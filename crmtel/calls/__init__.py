"""The call domain, whatever path builds a call (AMI, CDR, replay): tracker, legs, record, service."""
