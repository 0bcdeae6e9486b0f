//! `VultrClient`: the `VpsClient` on the Vultr API v2.
//!
//! Filled in by the `vultr` issue.
