//! The command line (DESIGN §6): `serve` (default), `validate`, `schema`,
//! `routes`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Parser, Subcommand};
use gateway_core::Route;
use gateway_core::config::{self, Config, ConfigError};
use gateway_core::gateway::MissingCredential;
use gateway_core::router::{RouteRule, Targets};
use gateway_core::{Gateway, Registry};

/// modelgate: one OpenAI/Anthropic/GenAI-compatible entry point in front of
/// many model providers.
#[derive(Debug, Parser)]
#[command(name = "modelgate", version, about, long_about = None)]
pub struct Cli {
    /// Config file (.toml, .json, .yaml). Without it: $MODELGATE_CONFIG,
    /// then ./modelgate.toml, then the embedded default.
    #[arg(
        long,
        short,
        global = true,
        env = "MODELGATE_CONFIG",
        value_name = "FILE"
    )]
    pub config: Option<PathBuf>,

    /// What to do; `serve` when omitted.
    #[command(subcommand)]
    pub command: Option<Command>,

    /// Address to listen on (overrides `server.listen`), when serving.
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<SocketAddr>,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the gateway (the default).
    Serve {
        /// Address to listen on (overrides `server.listen`).
        #[arg(long, value_name = "ADDR")]
        listen: Option<SocketAddr>,
    },
    /// Check a config file: exit 0, or 1 with errors that name each field.
    Validate,
    /// Print the config file's JSON Schema.
    Schema,
    /// List every resolvable model name and where it routes.
    Routes,
    /// List the dialects this gateway knows: built in and from plugins.
    Plugins,
}

/// Runs the command line and returns the process exit code.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    init_tracing();
    let result = match cli.command {
        None => serve(&cli.config, cli.listen),
        Some(Command::Serve { listen }) => serve(&cli.config, listen.or(cli.listen)),
        Some(Command::Validate) => validate(&cli.config),
        Some(Command::Schema) => {
            print!("{}", config::schema_json());
            Ok(ExitCode::SUCCESS)
        }
        Some(Command::Routes) => routes(&cli.config),
        Some(Command::Plugins) => plugins(&cli.config),
    };
    result.unwrap_or_else(|err| {
        eprintln!("error: {err:#}");
        ExitCode::FAILURE
    })
}

fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("MODELGATE_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

/// Loads the config by DESIGN §3's lookup order. `--config` and
/// `$MODELGATE_CONFIG` both arrive through `explicit` (clap reads the
/// variable).
fn load(explicit: &Option<PathBuf>, registry: &Registry) -> Result<(Config, String), ConfigError> {
    config::load(explicit.as_deref(), None, || {
        config::embedded_default(
            |var| std::env::var_os(var).is_some_and(|value| !value.is_empty()),
            |dialect| registry.get(dialect).is_some(),
        )
    })
}

/// Everything a command needs: the config, where it came from, the loaded
/// plugins and the built gateway.
struct Loaded {
    config: Config,
    source: String,
    plugins: Vec<crate::plugins::LoadedPlugin>,
    registry: Registry,
    gateway: Gateway,
    warnings: Vec<String>,
}

/// Loads the config, its plugins and the gateway; on failure prints the
/// errors (each naming its field or file) and returns `None`.
fn load_gateway(explicit: &Option<PathBuf>, missing: MissingCredential) -> Option<Loaded> {
    let mut registry = Registry::builtin();
    let (config, source) = match load(explicit, &registry) {
        Ok(loaded) => loaded,
        Err(err) => {
            eprintln!("{err}");
            return None;
        }
    };
    let base = match explicit {
        Some(path) => path.parent().map(PathBuf::from).unwrap_or_default(),
        None if source.starts_with('<') => PathBuf::from("."),
        None => PathBuf::from(&source)
            .parent()
            .map(PathBuf::from)
            .unwrap_or_default(),
    };
    let (plugins, plugin_warnings) =
        match crate::plugins::load_all(&config.plugins, &base, &mut registry) {
            Ok(loaded) => loaded,
            Err(err) => {
                eprintln!("{source}: {err}");
                return None;
            }
        };
    let env = |name: &str| std::env::var(name).ok();
    match Gateway::build(&config, &registry, &env, missing, &source) {
        Ok((gateway, issues)) => {
            let mut warnings: Vec<String> = plugin_warnings
                .iter()
                .map(|err| format!("{err} (optional, skipped)"))
                .collect();
            warnings.extend(
                issues
                    .iter()
                    .map(|issue| format!("{}: {}", issue.path, issue.message)),
            );
            Some(Loaded {
                config,
                source,
                plugins,
                registry,
                gateway,
                warnings,
            })
        }
        Err(err) => {
            eprintln!("{err}");
            None
        }
    }
}

fn serve(explicit: &Option<PathBuf>, listen: Option<SocketAddr>) -> anyhow::Result<ExitCode> {
    let Some(loaded) = load_gateway(explicit, MissingCredential::Fail) else {
        return Ok(ExitCode::FAILURE);
    };
    for warning in &loaded.warnings {
        tracing::warn!("{}: {warning}", loaded.source);
    }
    let listen = match listen {
        Some(listen) => listen,
        None => loaded.config.server.listen.parse()?,
    };
    if let Err(refusal) = announce_access(&loaded.gateway, &loaded.config, listen) {
        eprintln!("modelgate: {refusal}");
        return Ok(ExitCode::FAILURE);
    }
    // Each open stream holds two sockets; the usual soft limit of 1024
    // descriptors would cap the gateway near 500 streams.
    if let Err(err) = rlimit::increase_nofile_limit(u64::MAX) {
        tracing::warn!("cannot raise the open-file limit: {err}");
    }
    crate::serve(
        Arc::new(loaded.gateway),
        crate::ServeOptions {
            listen,
            config_source: loaded.source,
            workers: None,
            header_timeout: loaded.config.server.header_timeout(),
            keepalive_requests: loaded.config.server.keepalive_requests(),
            shutdown_grace: loaded.config.server.shutdown_grace(),
        },
    )?;
    Ok(ExitCode::SUCCESS)
}

/// Says at start-up who may call, and refuses to serve an open gateway
/// beyond loopback unless the config says so.
fn announce_access(gateway: &Gateway, config: &Config, listen: SocketAddr) -> Result<(), String> {
    if gateway.requires_keys() {
        eprintln!(
            "modelgate: {} app key(s) configured; callers must send one",
            gateway.key_count()
        );
        return Ok(());
    }
    if listen.ip().is_loopback() {
        eprintln!(
            "modelgate: no [[keys]] configured: any caller is accepted, on loopback only \
             (add [[keys]], or set server.allow_unauthenticated = true, to serve beyond it)"
        );
        return Ok(());
    }
    if config.server.allow_unauthenticated {
        eprintln!(
            "modelgate: no [[keys]] configured and server.allow_unauthenticated = true: anyone \
             who can reach {listen} may use every backend"
        );
        return Ok(());
    }
    Err(format!(
        "refusing to serve on {listen} with no [[keys]]: anyone who can reach it could use \
         every backend; add [[keys]], listen on a loopback address, or set \
         server.allow_unauthenticated = true"
    ))
}

fn validate(explicit: &Option<PathBuf>) -> anyhow::Result<ExitCode> {
    let Some(loaded) = load_gateway(explicit, MissingCredential::Warn) else {
        return Ok(ExitCode::FAILURE);
    };
    for warning in &loaded.warnings {
        eprintln!("warning: {}: {warning}", loaded.source);
    }
    println!(
        "{} is valid: {} backend(s), {} route name(s)",
        loaded.source,
        loaded.gateway.providers().len(),
        loaded.gateway.router().names().len()
    );
    Ok(ExitCode::SUCCESS)
}

fn routes(explicit: &Option<PathBuf>) -> anyhow::Result<ExitCode> {
    let Some(loaded) = load_gateway(explicit, MissingCredential::Warn) else {
        return Ok(ExitCode::FAILURE);
    };
    print!("{}", routes_table(&loaded.gateway));
    Ok(ExitCode::SUCCESS)
}

fn plugins(explicit: &Option<PathBuf>) -> anyhow::Result<ExitCode> {
    let Some(loaded) = load_gateway(explicit, MissingCredential::Warn) else {
        return Ok(ExitCode::FAILURE);
    };
    for warning in &loaded.warnings {
        eprintln!("warning: {}: {warning}", loaded.source);
    }
    println!("DIALECT  ORIGIN");
    for dialect in loaded.registry.dialects() {
        let origin = loaded
            .registry
            .get(dialect)
            .map(|provider| provider.origin())
            .unwrap_or_default();
        println!("{dialect}  {origin}");
    }
    for plugin in &loaded.plugins {
        println!(
            "\nplugin {} {} (modelgate-plugin {}) from {}: {}",
            plugin.name,
            plugin.version,
            plugin.sdk_version,
            plugin.path,
            plugin.dialects.join(", ")
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// Every resolvable name with its target: aliases, `backend/model`, then
/// bare model ids (ambiguous ones marked). `backend.model` works wherever
/// `backend/model` does and is not listed twice.
pub fn routes_table(gateway: &Gateway) -> String {
    let mut rows: Vec<[String; 4]> = vec![[
        "NAME".into(),
        "TARGET".into(),
        "UPSTREAM MODEL".into(),
        "RULE".into(),
    ]];
    let mut names = gateway.router().names();
    for provider in gateway.providers() {
        for model in &provider.info.models {
            if !names.contains(&model.id) {
                names.push(model.id.clone());
            }
        }
    }
    for name in names {
        let row = match gateway.router().plan(&name) {
            Ok(Targets::One(route)) => [
                name,
                route.qualified_name(),
                route.upstream_model.to_string(),
                match route.rule {
                    RouteRule::Alias => "alias",
                    RouteRule::BackendSlashModel => "backend/model",
                    RouteRule::BackendDotModel => "backend.model",
                    RouteRule::BareModel => "model id",
                }
                .into(),
            ],
            Ok(Targets::Fallback(routes)) => [
                name,
                routes
                    .iter()
                    .map(Route::qualified_name)
                    .collect::<Vec<_>>()
                    .join(" > "),
                routes
                    .iter()
                    .map(|route| route.upstream_model.to_string())
                    .collect::<Vec<_>>()
                    .join(" > "),
                "alias (fallback)".into(),
            ],
            Ok(Targets::Weighted(routes)) => [
                name,
                routes
                    .iter()
                    .map(|(route, weight)| format!("{}*{weight}", route.qualified_name()))
                    .collect::<Vec<_>>()
                    .join(" | "),
                routes
                    .iter()
                    .map(|(route, _)| route.upstream_model.to_string())
                    .collect::<Vec<_>>()
                    .join(" | "),
                "alias (weighted)".into(),
            ],
            Err(_) => [
                name,
                "(ambiguous: use backend/model)".into(),
                "-".into(),
                "-".into(),
            ],
        };
        rows.push(row);
    }
    let widths: Vec<usize> = (0..4)
        .map(|column| rows.iter().map(|row| row[column].len()).max().unwrap_or(0))
        .collect();
    let mut out = String::new();
    for row in rows {
        let line = format!(
            "{:w0$}  {:w1$}  {:w2$}  {}",
            row[0],
            row[1],
            row[2],
            row[3],
            w0 = widths[0],
            w1 = widths[1],
            w2 = widths[2]
        );
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}
