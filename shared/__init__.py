"""The contract and the plumbing every Alchemiser service stands on."""
