"""A cascade: the database fails, inventory and API fail because of it; the tree sorts it out."""

import threading
import time

from examples.cascade import InStock, Order, Placed, Stock, shop
from stalwart import QueuedForLater, StalwartError
from stalwart.testing import wait_for_event
from tests.support import queued_requests, wait_for


def read_journal(path):
    return path.read_text().split() if path.exists() else []


def incidents_of(system, cause):
    return [i for i in system.incidents() if i.cause == cause]


def test_the_database_is_named_recovered_first_and_dependents_resume_once(
    make_system, base, tmp_path
):
    flag, journal, queue = tmp_path / "db-down", tmp_path / "orders.log", tmp_path / "queue.db"
    system = make_system(
        shop(str(flag), str(journal), str(queue)),
        base=base,
        correlator={"incident_quiet_s": 0.5},
    )
    assert system.ask("shop/api", Stock("apple")) == InStock("apple", 5)
    before = {s.path: s.restarts for s in system.status()}

    flag.write_text("down")
    answers: dict[str, object] = {}

    def ask(key, path, message, timeout):
        try:
            answers[key] = system.ask(path, message, timeout=timeout)
        except StalwartError as exc:  # kept, to show in the assertions below
            answers[key] = exc

    clients = [
        threading.Thread(target=ask, args=(f"stock-{i}", "shop/api", Stock(f"item{i}"), 15.0))
        for i in range(4)
    ]
    clients += [
        threading.Thread(target=ask, args=(f"order-{i}", "shop/orders", Order(i), 15.0))
        for i in range(5)
    ]
    for client in clients:
        client.start()
        time.sleep(0.05)  # the clients come one after another, as traffic does
    # the correlator traces the dependents' errors to the database
    wait_for(lambda: incidents_of(system, "shop/db"), timeout=15)
    wait_for(
        lambda: (
            {"shop/inventory", "shop/api"} <= set(incidents_of(system, "shop/db")[0].dependents)
        ),
        timeout=15,
    )
    analysis = system.correlation()
    assert [c.path for c in analysis.root_causes][:1] == ["shop/db"]
    assert {"shop/inventory", "shop/api"} <= set(analysis.root_causes[0].dependents)

    time.sleep(1.5)  # the outage goes on; the dependents keep failing, and wait
    flag.unlink()  # the database is back
    for client in clients:
        client.join(30)
    assert not any(client.is_alive() for client in clients)
    incident = wait_for(
        lambda: next((i for i in incidents_of(system, "shop/db") if i.state == "resolved"), None),
        timeout=15,
    )
    # every request got its real answer, none an error: the stock requests were held while
    # the database was down and retried once it was back, long before their 15 s were up (a
    # held request is answered with an error only as its deadline nears); each order was
    # either placed or, while the breaker was open, queued for later, never refused
    assert len(answers) == 9, answers
    for i in range(4):
        item = f"item{i}"
        assert answers[f"stock-{i}"] == InStock(item, len(item)), answers  # the database's row
    for i in range(5):
        value = answers[f"order-{i}"]
        queued = isinstance(value, QueuedForLater) and value.path == "shop/orders"
        assert value == Placed(i) or queued, (i, value)
    queue_ids = [v.id for v in answers.values() if isinstance(v, QueuedForLater)]
    assert len(set(queue_ids)) == len(queue_ids), answers  # each order queued once at most

    # the dependents waited (held, not restarted) once the database was named, and resumed
    # only after its incident was resolved
    def resumed_events():  # each dependent resumes once it hears the incident was resolved
        events = system.events()
        resumed = {e.path for e in events if e.kind == "resumed"}
        held = {e.path for e in events if e.kind == "held" and e.path in incident.dependents}
        return events if held and held <= resumed else None

    events = wait_for(resumed_events, timeout=15)
    named = min(e.seq for e in events if e.path == "shop/db" and e.kind == "incident")
    held = [e.seq for e in events if e.kind == "held" and e.path in incident.dependents]
    resolved = [e.seq for e in events if e.path == "shop/db" and e.kind == "incident-resolved"]
    resumed = [e.seq for e in events if e.kind == "resumed" and e.path in incident.dependents]
    assert held and resumed and named < min(held)
    assert min(resolved) < min(resumed)
    # no restart storm: each dependent restarted at most once for the incident
    assert all(n <= 1 for n in incident.restarts.values()), incident.restarts
    after = {s.path: s.restarts for s in system.status()}
    for path in ("shop/inventory", "shop/api", "shop/orders.protected"):
        assert after[path] - before[path] <= 1, (path, before[path], after[path])
    # queued orders are replayed exactly once: every order placed, none twice. Once the queue
    # is empty, nothing is left that could be replayed again
    wait_for(lambda: sorted(read_journal(journal)) == [str(i) for i in range(5)], timeout=15)
    wait_for(lambda: queued_requests(queue) == 0, timeout=15)
    assert system.ask("shop/orders", Order(5)) == Placed(5)  # the breaker is closed again
    assert sorted(read_journal(journal)) == [str(i) for i in range(6)]
    assert system.ask("shop/api", Stock("pear")) == InStock("pear", 4)


def test_an_incident_stays_open_while_its_cause_is_down_though_nothing_calls_it(
    make_system, base, tmp_path
):
    # every caller of the database is held, so it sees no traffic and shows no error: quiet
    # alone must not resolve the incident. A held message is retried as a trial instead, and
    # only a trial that goes through resolves it
    flag, journal, queue = tmp_path / "db-down", tmp_path / "orders.log", tmp_path / "queue.db"
    system = make_system(
        shop(str(flag), str(journal), str(queue)),
        base=base,
        correlator={"incident_quiet_s": 0.3},
    )
    flag.write_text("down")
    answers = []
    clients = [
        threading.Thread(
            target=lambda i=i: answers.append(system.ask("shop/api", Stock(f"i{i}"), timeout=30))
        )
        for i in range(3)
    ]
    for client in clients:
        client.start()

    def failed_trials():
        events = system.events()
        trials = [e.seq for e in events if e.kind == "trial"]
        db_errors = [e.seq for e in events if e.path == "shop/db" and e.kind == "failure"]
        return [t for t in trials if any(f > t for f in db_errors)]

    wait_for(lambda: len(failed_trials()) >= 2, timeout=20)
    assert not [i for i in incidents_of(system, "shop/db") if i.state != "open"]
    assert answers == []  # still held: nobody got an error while the database was down

    flag.unlink()
    for client in clients:
        client.join(30)
    assert sorted(answers, key=lambda a: a.item) == [InStock(f"i{i}", 2) for i in range(3)]
    resolved = wait_for_event(system, "incident-resolved", timeout=15)
    events = system.events()
    incidents = incidents_of(system, "shop/db")
    assert [i.state for i in incidents] == ["resolved"]  # one incident, resolved once
    incident = incidents[0]
    shown = "\n".join(f"{e.seq} {e.kind} {e.path} {e.strategy} {e.detail[:90]}" for e in events)
    # resolved by a trial that went through: the root resolves the incident as it records
    # the answer of a held message retried as a trial (the event just before), never on a
    # timer because all was quiet. Other trials may still come after it: the root may have
    # asked for one before that answer reached it
    by = next((e for e in events if e.seq == resolved.seq - 1), None)
    assert by is not None and (by.kind, by.strategy) == ("recovered", "resume"), shown
    assert by.path in incident.dependents, shown
    # the message answered was let out by a trial of its actor, not released some other way
    # (a resume). Both events come from its supervisor, and the root records them in the
    # order the supervisor made them, on every base
    let_out = [e for e in events if e.path == by.path and e.kind in ("trial", "resumed")]
    assert [e.kind for e in let_out if e.seq < by.seq][-1:] == ["trial"], shown
