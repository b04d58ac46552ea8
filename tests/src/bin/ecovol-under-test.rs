//! The `ecovol` command built inside the test package, so integration tests run a binary cargo built with the
//! same features as the tests themselves (`CARGO_BIN_EXE_ecovol-under-test`), never a stale or differently
//! configured one.

#[tokio::main]
async fn main() {
    std::process::exit(ecovol_node::cli::run().await);
}
