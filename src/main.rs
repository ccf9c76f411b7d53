//! The `wardline` binary: everything lives in the library so tests drive the same code.
#![forbid(unsafe_code)]

fn main() -> std::process::ExitCode {
    wardline::startup::install_crypto_provider();
    wardline::cli::main()
}
