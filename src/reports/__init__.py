"""The read model of an alert: what the gateway, the CLI and analytics show of it, defined once."""
