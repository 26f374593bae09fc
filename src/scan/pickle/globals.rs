//! WIP
#[derive(Debug, Clone, Default)]
pub struct GlobalLists { pub allow: Vec<String>, pub deny: Vec<String> }
