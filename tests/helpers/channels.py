"""What the channel tests share: the customer-token secret the ``customers`` fixture sets."""

SECRET = "test-secret-for-customer-tokens-of-32-bytes-or-more"
