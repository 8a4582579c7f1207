"""The HTTP gateway: alert intake, subscribers, tracking links, status and stats."""
