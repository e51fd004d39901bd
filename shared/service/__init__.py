"""The runtime every service process shares: FastAPI app, health, metrics, auth, lifecycle."""
