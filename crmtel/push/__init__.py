"""Live call cards for managers: the websocket hub, the notifier fed by call tracking, and the web app."""
