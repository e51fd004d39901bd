"""The bundled strategy files and allocation configs: the default configuration."""
