"""hubpipe's pipeline layer: the foundation (core/), stage wiring, runners, the command-line interface and the
Python API."""
