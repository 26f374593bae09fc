//! Every integration test in one binary: each module is one area, run
//! against the real `modelgate` binary, real git, a real watcher and real
//! Python tools where the area needs them. One binary links the library
//! once instead of once per file.

mod benign;
mod bom;
mod bounded_reads;
mod chat_templates;
mod cli;
mod common;
mod containers;
mod corpus;
mod git_hooks;
mod guard;
mod hub;
#[path = "../support/hub_stub.rs"]
mod hub_stub;
mod limits;
mod policy;
mod policy_signature;
mod proxy;
mod regression;
mod remote;
mod robustness;
mod rule_fixtures;
mod sarif;
mod scaleout;
mod sign;
mod watch;
mod wheel;
