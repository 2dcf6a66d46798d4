//! ferrocnn: a small, fast, readable CNN framework.
