//! The `nsconform` binary.

fn main() -> std::process::ExitCode {
    nsconform::cli::main()
}
