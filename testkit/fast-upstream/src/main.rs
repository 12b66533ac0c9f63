//! A provider stand-in fast enough not to be what a benchmark measures,
//! plus the client the memory benchmark uses to hold many streams open.
//!
//! `fast-upstream serve` answers OpenAI (`/v1/chat/completions`),
//! Anthropic (`/v1/messages`) and Gemini (`/v1beta/models/{m}:generateContent`
//! and `:streamGenerateContent`) requests with fixed answers built once at
//! start-up: JSON, or SSE in `--chunks` chunks, `--delay-ms` apart. It reads
//! only as much of a request as it needs (the path, and whether the body asks
//! for a stream).
//!
//! `fast-upstream hold --url U --body B --count N` opens N streaming POSTs,
//! waits until each has sent its first chunk, prints `holding N`, and keeps
//! them open until killed.

mod answers;
mod hold;
mod serve;

use std::net::SocketAddr;
use std::time::Duration;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(about = "A fast mock provider for benchmarks")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve fixed answers.
    Serve {
        /// Address to listen on; port 0 picks one (printed on stdout).
        #[arg(long, default_value = "127.0.0.1:0")]
        listen: SocketAddr,
        /// Content chunks per streamed answer.
        #[arg(long, default_value_t = 20)]
        chunks: usize,
        /// Pause between streamed chunks, in milliseconds.
        #[arg(long, default_value_t = 0)]
        delay_ms: u64,
    },
    /// Hold streaming requests open.
    Hold {
        /// Where to send them.
        #[arg(long)]
        url: String,
        /// The JSON body of each.
        #[arg(long)]
        body: String,
        /// How many to hold.
        #[arg(long)]
        count: usize,
    },
}

fn main() -> std::io::Result<()> {
    // Thousands of sockets need more than the usual 1024 descriptors.
    let _ = rlimit::increase_nofile_limit(u64::MAX);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    match Cli::parse().command {
        Command::Serve {
            listen,
            chunks,
            delay_ms,
        } => runtime.block_on(serve::run(
            listen,
            answers::Answers::new(chunks),
            Duration::from_millis(delay_ms),
        )),
        Command::Hold { url, body, count } => runtime.block_on(hold::run(&url, body, count)),
    }
}
