//! The `modelgate` binary; see `modelgate --help`.

use std::process::ExitCode;

fn main() -> ExitCode {
    gateway_http::cli::main()
}
