"""hubpipe's pipeline layer: configuration, stage wiring, runners and the command-line interface."""

__version__ = "0.1.0"
