//! The `herald` binary.
#![forbid(unsafe_code)]

use clap::Parser;

#[tokio::main]
async fn main() {
    let cli = herald::cli::Cli::parse();
    std::process::exit(herald::cli::run(cli).await);
}
