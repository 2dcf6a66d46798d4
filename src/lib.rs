//! ferrocnn: a small, fast, readable CNN framework.

pub mod data;
