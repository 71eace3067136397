"""perdure: durable workflows for Python."""
