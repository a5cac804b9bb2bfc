//! Command-line entry point: parse, call the library, map the result to an exit code.
fn main() {}
