//! Renders the `#cloud-config` user_data of a new VPS from a typed description, and parses
//! `cloud-init status` output. No I/O.
//!
//! Filled in by the `cloud-init` issue.
