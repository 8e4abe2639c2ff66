"""The shop's supervision tree, in Python (``shop.toml`` declares the same tree)."""

from __future__ import annotations

from stalwart import Breaker, Child, LevelPolicy, Supervisor

from .actors import Api, Database, Inventory, Payments, Sessions, Worker

# short waits and one attempt per level, so the demo climbs the ladder quickly
DEMO_LEVELS = LevelPolicy(
    basic_attempts=1,
    basic_delay_s=0.01,
    enhanced_attempts=1,
    component_attempts=1,
    quiet_period_s=2.0,
)


def shop_tree(backend_path: str) -> Supervisor:
    opts = {"backend": backend_path}
    return Supervisor(
        "shop",
        strategy="one_for_one",
        max_restarts=10,
        within_s=60,
        levels=DEMO_LEVELS,
        children=[
            Child("db", Database, options=opts),
            Child("inventory", Inventory, depends_on=["db"], options=opts),
            Child(
                "payments",
                Payments,
                options=opts,
                breaker=Breaker(failure_threshold=3, recovery_timeout=1.0, success_threshold=1),
            ),
            Supervisor(
                "storefront",
                strategy="one_for_all",
                depends_on=["inventory", "payments"],
                max_restarts=5,
                within_s=60,
                levels=DEMO_LEVELS,
                children=[
                    Child("sessions", Sessions),
                    Child("api", Api, depends_on=["sessions"]),
                ],
            ),
            Supervisor(
                "workers",
                strategy="one_for_one",
                levels=DEMO_LEVELS,
                children=[
                    Child("w", Worker, replicas=3),
                ],
            ),
        ],
    )
