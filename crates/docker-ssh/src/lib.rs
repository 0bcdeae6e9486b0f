//! SSH sessions with pinned host keys, a connection pool, exec with timeouts, uploads, key
//! files, and a typed Docker command builder that runs over any `Executor`.
//!
//! Filled in by the `docker-ssh` issue.
