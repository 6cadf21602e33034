//! The service's rules, proven on the in-memory Oponn.

mod helpers;
mod properties;
mod rules;
mod stories;
