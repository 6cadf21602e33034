//! Every adapter in this crate against its port's contract suite.

mod local_key;
mod memory;
