//! modelgate: a firewall for machine-learning model files.
//!
//! The detection core is its own crate, `modelgate-scan`, re-exported here
//! as [`scan`] so that adapters keep writing `crate::scan::…`; everything in
//! this crate is an adapter around it.

pub mod bom;
pub mod cache;
pub mod digest;
pub mod git;
pub mod hfcache;
pub mod hub;
pub mod policy;
pub mod proxy;
pub mod quarantine;
pub mod remote;
pub mod report;
pub mod sign;
pub mod watch;

pub use modelgate_scan as scan;

#[cfg(test)]
mod layering;
