//! The `lab` command (placeholder until the CLI lands).

fn main() {}
