//! `ecovol`: run a node (`ecovol serve`), and work with one from the command line.

#[global_allocator]
static ALLOCATOR: ecovol_node::Allocator = ecovol_node::Allocator;

#[tokio::main]
async fn main() {
    std::process::exit(ecovol_node::cli::run().await);
}
