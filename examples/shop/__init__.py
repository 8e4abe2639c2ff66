"""The shop: a small service tree with fault injection (``python -m examples.shop``)."""
