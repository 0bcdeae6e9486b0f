//! Host and agent records on the VPS's state volume: versioned JSON, atomic writes,
//! one-round-trip listing.
//!
//! Filled in by the `host-store` issue.
