"""Three nodes on one host: placement by capability and failover of a lost node."""
