"""A worker pool whose jobs need a flaky external service behind a circuit breaker."""
