"""Central zone: ID-number rules, ingest, identity vault, linkage and extracts. Controller only."""
