use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    conform::cli::main(conform::cli::Cli::parse()).into()
}
