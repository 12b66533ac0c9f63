//! The `modelgate` binary; see `modelgate --help`.

use std::process::ExitCode;

/// mimalloc: glibc's malloc was a fifth of the hot path's instructions. Its
/// arenas are committed lazily (see `.cargo/config.toml`), which keeps idle
/// RSS where glibc's was.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    gateway_http::cli::main()
}
