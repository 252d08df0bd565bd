"""The browser phone: per-manager WebRTC devices on the PBX, their credentials, and the page's access to them."""
