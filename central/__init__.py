"""Central service: ingest, storage, matching, decisions, API and web."""
