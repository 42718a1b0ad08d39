"""The Python connector of examples/shop.flow: performs its `price!` endpoint.

    flowmetal connector examples/shop_connector.py

docs/connectors.md walks through it.
"""

from flowmetal.connectors.sdk import RecordValue, endpoint

PRICES = {"apple": 120, "pear": 95}  # a stand-in for the pricing service


@endpoint("examples.shop/price!")
def price(sku, currency="EUR", step=None):
    # step.key ("RUN:STEP") is the same every time this step is performed: a real service
    # would get it as an idempotency key.
    if sku not in PRICES:
        raise LookupError(f"no price for {sku!r}")  # fails the run, naming the endpoint
    return RecordValue("examples.shop", "quote", ("sku", "cents", "currency"), (sku, PRICES[sku], currency))
