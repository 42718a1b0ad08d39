"""A module whose endpoint has a name no endpoint can have: importing it fails (the tests of
`flowmetal worker --connector`)."""

from flowmetal.connectors.sdk import endpoint


@endpoint("not-a-name")
def nameless():
    return 1
