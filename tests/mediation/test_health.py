"""Health checks: a hung actor is found; on real processes it is killed and replaced."""

import threading
import time

from stalwart import Child, Supervisor
from tests.support import Ping, Work, Worker, wait_for


def test_a_hung_actor_on_real_processes_is_killed_and_replaced(make_system):
    tree = Supervisor(
        "s",
        health_interval_s=0.2,
        health_misses=2,
        children=[Child("w", Worker), Child("other", Worker)],
    )
    system = make_system(tree, base="multiproc")
    before = system.status()
    system.tell("s/w", Work(1, sleep_s=3600))  # a handler that never returns
    wait_for(
        lambda: (
            system.status()["s/w"].pid not in (0, before["s/w"].pid)
            and system.status()["s/w"].state == "running"
        ),
        timeout=15,
    )
    kinds = [(e.kind, e.path) for e in system.events()]
    assert ("hung", "s/w") in kinds and ("crash", "s/w") in kinds
    assert system.ask("s/w", Ping(2)).n == 2
    assert system.status()["s/other"].pid == before["s/other"].pid


def test_a_hung_handler_in_one_process_is_reported_clearly(make_system):
    system = make_system(Supervisor("s", children=[Child("w", Worker)]), hang_report_s=0.3)
    done = []
    asker = threading.Thread(
        target=lambda: done.append(system.ask("s/w", Work(1, sleep_s=1.5), timeout=10))
    )
    asker.start()
    report = wait_for(system.hung_actors, timeout=5)
    assert report[0]["path"] == "s/w" and report[0]["handler"] == "Worker.receiveMsg_Work"
    asker.join()
    assert done[0].id == 1  # it was slow, not dead: it finished


def test_an_unhealthy_actor_is_recovered(make_system, tmp_path):
    from tests.support import Sick

    flag = tmp_path / "sick"
    flag.write_text("yes")
    tree = Supervisor(
        "s", health_interval_s=0.1, children=[Child("w", Sick, options={"sick_flag": str(flag)})]
    )
    system = make_system(tree)
    wait_for(lambda: any(e.kind == "failure" and e.path == "s/w" for e in system.events()))
    wait_for(lambda: system.ask("s/w", Ping()) >= 1)  # on_retry ran: it tried to heal
    flag.unlink()
    time.sleep(0.3)
    failures = len([e for e in system.events() if e.kind == "failure"])
    time.sleep(0.3)
    assert len([e for e in system.events() if e.kind == "failure"]) == failures
