//! modelgate: a firewall for machine-learning model files.
//!
//! The [`scan`] module is the detection core; everything else is an adapter
//! around it.

pub mod bom;
pub mod digest;
pub mod git;
pub mod hub;
pub mod policy;
pub mod quarantine;
pub mod report;
pub mod scan;
pub mod sign;
pub mod watch;
