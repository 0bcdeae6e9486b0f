//! The host lifecycle on any `VpsClient`: create, stop, start, snapshot, destroy, discovery
//! and idle handling.
//!
//! Not written yet: it comes after `docker-ssh`, `cloud-init`, `vps-client` and `host-store`.
