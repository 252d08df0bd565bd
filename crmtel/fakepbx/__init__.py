"""The fake Asterisk for tests, replay and the demo: AMI server, Originate, simulator, recorded traces."""
