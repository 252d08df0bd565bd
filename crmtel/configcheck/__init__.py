"""Configuration checks: where each value came from, what is wrong with it, and what would be valid.

``origins`` and ``messages`` import nothing of crmtel (``crmtel.config`` uses them); ``checks`` looks at the
loaded settings like ``run`` does; ``probes`` tries the ports, the database and the AMI logins.
"""
