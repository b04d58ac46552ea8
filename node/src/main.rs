//! `ecovol`: run a node (`ecovol serve`), and work with one from the command line.

#[tokio::main]
async fn main() {
    std::process::exit(ecovol_node::cli::run().await);
}
