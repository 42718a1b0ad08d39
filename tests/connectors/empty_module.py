"""A module with no endpoints, for the connector command's error message."""

VALUE = 1
