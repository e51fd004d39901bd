"""The four Alchemiser services and the command line."""
