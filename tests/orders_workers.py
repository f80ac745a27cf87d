"""What the processes of the orders race tests run: each its own interpreter and engine, all
released at once by a barrier, each one order through the whole use case (with its retries)."""
from __future__ import annotations

from typing import Any

from resource_mgr.db import Database


def reserve(url: str, barrier: Any, results: Any, n: int, args: dict[str, Any]) -> None:
    from resource_mgr import models  # noqa: F401  (complete the mappers)
    from resource_mgr.clock import utcnow
    from resource_mgr.config import load_settings
    from resource_mgr.errors import DomainError
    from resource_mgr.orders import retry, services
    from resource_mgr.security.principal import Principal
    from resource_mgr.states import Role

    db = Database(url)
    settings = load_settings(environ={}, database_url=url)
    who = Principal(name=f"user:counter{n}", roles=frozenset({Role.SALES}), local_network_ids=None)
    order_ref = args.get("order_ref") or f"RACE-{n}"
    try:
        barrier.wait(timeout=60)

        def use_case(uow: Any) -> str:
            res, created = services.reserve(uow.session, principal=who, settings=settings, now=utcnow(),
                                            order_ref=order_ref, action="new", products=args["products"],
                                            address_id=args["address_id"])
            return f"{'created' if created else 'same'} {res.id}"

        outcome = retry.run(db, who.name, settings.orders_retry_attempts, use_case)
    except DomainError as exc:
        outcome = exc.code
    except Exception as exc:  # reported by the test
        outcome = f"error {type(exc).__name__}: {str(exc)[:300]}"
    finally:
        db.dispose()
    results.put(outcome)


def reserve_rounds(url: str, go: Any, results: Any, n: int, threads: int, rounds: int, args: dict[str, Any]) -> None:
    """`threads` clients in this process (each its own session from one engine), every round: all
    processes are released at once by `go` (the test waits on it too, after resetting the
    world), then every client starts its order at the same moment (a thread barrier), each
    through the whole use case with its retries; the outcomes go to `results` as
    (round, outcome)."""
    import threading

    from resource_mgr import models  # noqa: F401  (complete the mappers)
    from resource_mgr.clock import utcnow
    from resource_mgr.config import load_settings
    from resource_mgr.errors import DomainError
    from resource_mgr.orders import retry, services
    from resource_mgr.security.principal import Principal
    from resource_mgr.states import Role

    db = Database(url)
    settings = load_settings(environ={}, database_url=url)

    def client(k: int, r: int, start: threading.Barrier, out: list[str]) -> None:
        who = Principal(name=f"user:counter{n}-{k}", roles=frozenset({Role.SALES}), local_network_ids=None)
        order_ref = f"RACE-{r}-{n}-{k}"
        try:
            start.wait(timeout=60)

            def use_case(uow: Any) -> str:
                res, created = services.reserve(uow.session, principal=who, settings=settings, now=utcnow(),
                                                order_ref=order_ref, action="new", products=args["products"],
                                                address_id=args["address_id"])
                return f"{'created' if created else 'same'} {res.id}"

            out[k] = retry.run(db, who.name, settings.orders_retry_attempts, use_case)
        except DomainError as exc:
            out[k] = exc.code
        except Exception as exc:  # reported by the test
            out[k] = f"error {type(exc).__name__}: {str(exc)[:300]}"

    try:
        for r in range(rounds):
            go.wait(timeout=300)
            start = threading.Barrier(threads)
            out = [""] * threads
            workers = [threading.Thread(target=client, args=(k, r, start, out)) for k in range(threads)]
            for w in workers:
                w.start()
            for w in workers:
                w.join()
            for o in out:
                results.put((r, o))
    finally:
        db.dispose()
