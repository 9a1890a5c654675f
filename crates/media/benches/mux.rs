//! Placeholder until the muxing benchmark lands.
fn main() {}
