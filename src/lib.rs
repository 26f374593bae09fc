//! modelgate: a firewall for machine-learning model files.
//!
//! The [`scan`] module is the detection core; everything else is an adapter
//! around it.

pub mod bom;
pub mod report;
pub mod scan;
pub mod sign;
