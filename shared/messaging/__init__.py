"""The one path every service's events take: consumer loop (inbox) and outbox relay."""
