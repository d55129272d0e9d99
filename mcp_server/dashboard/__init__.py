"""The web dashboard at GET /dashboard: spend, calls, jobs, media and health, for a key signed in by cookie."""
