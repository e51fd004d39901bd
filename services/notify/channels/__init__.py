"""Where a report goes: one `Notifier` port, one adapter per channel."""
