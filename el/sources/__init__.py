"""dlt sources of the shop: operational database, events API, marketing file drops."""
