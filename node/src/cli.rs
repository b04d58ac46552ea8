//! The `ecovol` command line (being written).

/// Runs the command line; returns the process exit code.
pub async fn run() -> i32 {
    0
}
