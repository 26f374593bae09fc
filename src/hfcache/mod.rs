//! The Hugging Face hub cache as huggingface_hub lays it out: where it is
//! ([`resolve_hub_cache`]), which of its paths hold content
//! ([`classify`], [`enumerate`]), how blobs, the ≥1.32 shared store and
//! snapshot links tie together ([`repos_for`], [`repo_links`]), and what a
//! snapshot path means ([`locate`]).
//!
//! A leaf: it depends on nothing else in the crate, so the daemon, the BOM,
//! signing and the policy all read the cache through one set of rules and
//! cannot disagree on where it is or what is in it.

mod layout;
mod location;
mod resolve;

pub use layout::{
    CacheLink, Place, Root, RootKind, classify, enumerate, is_content_inside, is_snapshot_entry,
    repo_links, repo_of, repos_for, root_of,
};
pub use location::{HfLocation, RepoType, locate, model_snapshots};
pub use resolve::{default_hub_cache, resolve_hub_cache};
