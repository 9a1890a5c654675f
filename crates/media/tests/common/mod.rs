//! The integration tests' helpers live in `convrec-testkit`, shared with the other crates.
#![allow(dead_code)]

pub use convrec_testkit::*;
