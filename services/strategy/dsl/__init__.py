"""The symphony language: reader, static checks, indicators and evaluator."""
