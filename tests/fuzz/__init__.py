"""Fuzz tests: hypothesis throws random input at the system's input surfaces."""

import os

EXAMPLES = int(os.environ.get("STALWART_FUZZ_EXAMPLES", "40"))
