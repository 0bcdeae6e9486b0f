//! `LocalVpsClient`: a `VpsClient` whose VPSes are containers on the local Docker engine.
//!
//! Filled in by the `local-vps` issue. Its images are built by `local-vps-images`.
