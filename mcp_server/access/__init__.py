"""HTTP access control: API keys, OAuth resource-server mode, rate limits, Host/Origin/body checks, identity."""
