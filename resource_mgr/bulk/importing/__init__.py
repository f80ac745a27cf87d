"""The bulk importer, split by phase around one shared state (`state.ImportState`):

- `resource_mgr.bulk.importer`: orchestration (the two phases, the job handler, the history row);
- `rows`: parsing a file's rows and resolving references;
- `resources`: local networks, naming rules, templates, resources, coverage, cable spans;
- `units`: units derived from their owners, cards, units.csv, unit references, connections;
- `numbers`: segments, numbers.csv, grading, number rows;
- `services`: customers, services and their bearers, paths, holds;
- `ledger`: occupancy derived from the services' paths and the holds;
- `writer`: the write side (PostgreSQL COPY in a thread of its own, SQLite executemany).
"""
