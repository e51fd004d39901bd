"""The `alchemiser` command groups; each imports its heavy dependencies inside its functions."""
