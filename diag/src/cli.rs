//! The command line (placeholder until the commands land).

/// Runs the program with these arguments; returns the exit code.
pub fn main(_args: impl IntoIterator<Item = std::ffi::OsString>) -> i32 {
    2
}
