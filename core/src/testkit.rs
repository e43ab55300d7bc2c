//! In-memory adapters and the port contract suite (feature `testkit`).
