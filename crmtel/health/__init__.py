"""Health: what /healthz reports to monitoring and load balancers."""
