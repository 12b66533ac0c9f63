//! `cargo xtask bench [--smoke] [--seconds N] [--rounds N] [--streams N]`:
//! modelgate next to nginx in front of the same fast upstream, driven by
//! `wrk` over loopback.
//!
//! For each case it runs the upstream directly, through nginx (Debian's, 2
//! workers, upstream keep-alive, buffering off) and through modelgate, at
//! concurrency 64 (RPS, p50, p99, CPU per request of the proxy's processes)
//! and at concurrency 1 (added p50 and mean: a lone request's time here is
//! mostly cross-core wake-ups whose cost takes one of two values, so its
//! p50 can land in either and the mean says more), then at concurrency 1
//! again with the proxy pinned to a core of its own and the client and
//! upstream to another (see [`PROXY_CORE`]). Rounds are repeated, the
//! proxies taking turns going first, and each figure is the median. A
//! memory case holds many slow streams open through a fresh modelgate and
//! reports RSS per open stream and idle RSS.
//!
//! `--smoke` is the CI version: debug binaries, a second per run, 100
//! streams; it fails unless every run completed with no errors. Full runs
//! write `bench/results/<unix time>.json`.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::{BufRead, BufReader};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};

use crate::{cargo, root, run, target_dir};

/// What to run.
struct Options {
    smoke: bool,
    seconds: u64,
    rounds: usize,
    streams: usize,
}

impl Options {
    fn parse(args: &[String]) -> Result<Self, String> {
        let smoke = args.iter().any(|arg| arg == "--smoke");
        let value = |name: &str, default: u64| -> Result<u64, String> {
            match args.iter().position(|arg| arg == name) {
                Some(at) => args
                    .get(at + 1)
                    .and_then(|text| text.parse().ok())
                    .ok_or_else(|| format!("{name} needs a number")),
                None => Ok(default),
            }
        };
        Ok(Self {
            smoke,
            seconds: value("--seconds", if smoke { 1 } else { 8 })?,
            rounds: usize::try_from(value("--rounds", if smoke { 1 } else { 3 })?).unwrap_or(1),
            streams: usize::try_from(value("--streams", if smoke { 100 } else { 2000 })?)
                .unwrap_or(100),
        })
    }
}

/// A child process stopped when dropped: SIGTERM first, so nginx's master
/// takes its workers down with it (a SIGKILL left them running, holding the
/// port), then SIGKILL if it has not gone after a few seconds.
struct Running {
    child: Child,
    name: &'static str,
}

impl Drop for Running {
    fn drop(&mut self) {
        let terminated = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .is_ok_and(|status| status.success());
        if terminated {
            let deadline = Instant::now() + Duration::from_secs(5);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = self.child.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `command` and waits for a stdout line containing `marker`;
/// returns the process and the rest of that line.
fn start(
    mut command: Command,
    name: &'static str,
    marker: &str,
) -> Result<(Running, String), String> {
    command.stdout(Stdio::piped()).stderr(Stdio::inherit());
    let mut child = command
        .spawn()
        .map_err(|err| format!("cannot start {name}: {err}"))?;
    let stdout = child.stdout.take().ok_or("no stdout")?;
    let mut lines = BufReader::new(stdout).lines();
    let running = Running { child, name };
    for line in lines.by_ref() {
        let line = line.map_err(|err| format!("{name}: {err}"))?;
        if let Some(rest) = line.split(marker).nth(1) {
            let rest = rest.trim().to_owned();
            // Keep draining stdout so the child never blocks on it.
            std::thread::spawn(move || lines.for_each(drop));
            return Ok((running, rest));
        }
    }
    Err(format!(
        "{} exited before printing '{marker}'",
        running.name
    ))
}

fn have(tool: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|status| status.success())
}

/// Installs nginx and wrk from Debian's packages when missing.
fn ensure_tools() -> Result<(), String> {
    let missing: Vec<&str> = ["nginx", "wrk"]
        .into_iter()
        .filter(|tool| !have(tool))
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    let sudo = if have("sudo") { "sudo " } else { "" };
    run(Command::new("sh").args([
        "-c",
        &format!(
            "{sudo}apt-get update -qq && DEBIAN_FRONTEND=noninteractive {sudo}apt-get install -y -qq {} >/dev/null",
            missing.join(" ")
        ),
    ]))
}

fn free_port() -> Result<u16, String> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").map_err(|err| err.to_string())?;
    Ok(listener.local_addr().map_err(|err| err.to_string())?.port())
}

fn wait_for_port(port: u16) -> Result<(), String> {
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Err(format!("nothing listens on port {port}"))
}

fn start_nginx(dir: &Path, upstream: &str) -> Result<(Running, String), String> {
    let port = free_port()?;
    let conf = format!(
        "worker_processes 2;\n\
         pid {dir}/nginx.pid;\n\
         error_log {dir}/nginx-error.log warn;\n\
         daemon off;\n\
         events {{ worker_connections 8192; }}\n\
         http {{\n\
           access_log off;\n\
           client_body_temp_path {dir}/body;\n\
           proxy_temp_path {dir}/proxy;\n\
           upstream up {{ server {upstream}; keepalive 256; }}\n\
           server {{\n\
             listen 127.0.0.1:{port};\n\
             location / {{\n\
               proxy_pass http://up;\n\
               proxy_http_version 1.1;\n\
               proxy_set_header Connection \"\";\n\
               proxy_buffering off;\n\
               proxy_request_buffering off;\n\
             }}\n\
           }}\n\
         }}\n",
        dir = dir.display()
    );
    let path = dir.join("nginx.conf");
    std::fs::write(&path, conf).map_err(|err| err.to_string())?;
    let mut command = Command::new("nginx");
    command
        .arg("-p")
        .arg(dir)
        .arg("-c")
        .arg(&path)
        .stdout(Stdio::null())
        .stderr(Stdio::inherit());
    let child = command
        .spawn()
        .map_err(|err| format!("cannot start nginx: {err}"))?;
    wait_for_port(port)?;
    Ok((
        Running {
            child,
            name: "nginx",
        },
        format!("127.0.0.1:{port}"),
    ))
}

/// `pid` and its direct children (nginx's master and its workers): the
/// processes whose CPU time is the proxy's, and which are pinned together.
fn family(pid: u32) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return vec![pid];
    };
    let mut pids = vec![pid];
    for entry in entries.flatten() {
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        // The parent is the second field after the command name, which is
        // in parentheses.
        let Some((head, rest)) = stat.rsplit_once(')') else {
            continue;
        };
        let own: Option<u32> = head
            .split_whitespace()
            .next()
            .and_then(|text| text.parse().ok());
        let parent: Option<u32> = rest
            .split_whitespace()
            .nth(1)
            .and_then(|text| text.parse().ok());
        if let (Some(own), Some(parent)) = (own, parent)
            && parent == pid
        {
            pids.push(own);
        }
    }
    pids
}

/// CPU time (user + system) of `pid` and its direct children, in µs.
fn cpu_micros(pid: u32) -> u64 {
    let ticks_per_second = 100; // Linux's USER_HZ.
    let mut ticks = 0;
    for member in family(pid) {
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{member}/stat")) else {
            continue;
        };
        let Some((_, rest)) = stat.rsplit_once(')') else {
            continue;
        };
        let fields: Vec<&str> = rest.split_whitespace().collect();
        let field = |at: usize| -> u64 {
            fields
                .get(at)
                .and_then(|text| text.parse().ok())
                .unwrap_or(0)
        };
        ticks += field(11) + field(12);
    }
    ticks * 1_000_000 / ticks_per_second
}

/// Where the pinned concurrency-1 run puts each process: the proxy alone
/// on one core, the load generator and the upstream together on another.
/// Unpinned, the kernel places the three anew in every run, and on the
/// bench machine a wake-up that crosses cores costs tens of µs, so the
/// unpinned figure moves with placement by more than the proxies differ;
/// pinned, both proxies are measured in the same placement.
const PROXY_CORE: &str = "0";
const CLIENT_CORE: &str = "1";

/// Whether the pinned run can be made: two cores and `taskset`.
fn can_pin() -> bool {
    std::thread::available_parallelism().is_ok_and(|cores| cores.get() >= 2) && have("taskset")
}

/// Binds every thread of `pid` and of its direct children to `cores` (a
/// `taskset` list, such as `0` or `0-1`). Quietly: it is done twice per
/// target and round.
fn pin(pid: u32, cores: &str) -> Result<(), String> {
    for member in family(pid) {
        let status = Command::new("taskset")
            .args(["-a", "-p", "-c", cores, &member.to_string()])
            .stdout(Stdio::null())
            .status()
            .map_err(|err| format!("cannot run taskset: {err}"))?;
        if !status.success() {
            return Err(format!(
                "taskset -c {cores} for pid {member} failed with {status}"
            ));
        }
    }
    Ok(())
}

/// Binds the upstream to `upstream_cores` and the proxy, if there is one,
/// to `proxy_cores`.
fn place(
    upstream: u32,
    proxy: Option<u32>,
    upstream_cores: &str,
    proxy_cores: &str,
) -> Result<(), String> {
    pin(upstream, upstream_cores)?;
    proxy.map_or(Ok(()), |proxy| pin(proxy, proxy_cores))
}

/// Resident memory of `pid`, in KiB.
fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find_map(|line| line.strip_prefix("VmRSS:"))
                .and_then(|rest| rest.split_whitespace().next()?.parse().ok())
        })
        .unwrap_or(0)
}

/// One wrk run's figures.
#[derive(Debug, Clone, Default)]
struct Load {
    rps: f64,
    /// wrk's mean latency (its `Latency` line's `Avg`).
    mean_us: f64,
    p50_us: f64,
    p99_us: f64,
    requests: u64,
    errors: u64,
}

fn micros(text: &str) -> f64 {
    let text = text.trim();
    let (number, scale) = if let Some(n) = text.strip_suffix("us") {
        (n, 1.0)
    } else if let Some(n) = text.strip_suffix("ms") {
        (n, 1_000.0)
    } else if let Some(n) = text.strip_suffix('s') {
        (n, 1_000_000.0)
    } else {
        (text, 1.0)
    };
    number.parse::<f64>().unwrap_or(f64::NAN) * scale
}

fn parse_wrk(output: &str) -> Load {
    let mut load = Load::default();
    for line in output.lines() {
        let line = line.trim();
        if let Some(rest) = line.strip_prefix("Requests/sec:") {
            load.rps = rest.trim().parse().unwrap_or(0.0);
        } else if let Some(rest) = line.strip_prefix("Latency ")
            && let Some(average) = rest.split_whitespace().next()
            && average != "Distribution"
        {
            load.mean_us = micros(average);
        } else if let Some(rest) = line.strip_prefix("50%") {
            load.p50_us = micros(rest);
        } else if let Some(rest) = line.strip_prefix("99%") {
            load.p99_us = micros(rest);
        } else if line.contains(" requests in ") {
            load.requests = line
                .split_whitespace()
                .next()
                .and_then(|n| n.parse().ok())
                .unwrap_or(0);
        } else if let Some(rest) = line.strip_prefix("Non-2xx or 3xx responses:") {
            load.errors += rest.trim().parse::<u64>().unwrap_or(1);
        } else if let Some(rest) = line.strip_prefix("Socket errors:") {
            load.errors += rest
                .split(',')
                .filter_map(|part| part.split_whitespace().last()?.parse::<u64>().ok())
                .sum::<u64>();
        }
    }
    load
}

fn wrk(
    dir: &Path,
    url: &str,
    body: &Value,
    connections: u32,
    seconds: u64,
    core: Option<&str>,
) -> Result<Load, String> {
    let script = dir.join("post.lua");
    let lua = format!(
        "wrk.method = \"POST\"\nwrk.body = [==[{body}]==]\nwrk.headers[\"Content-Type\"] = \"application/json\"\nwrk.headers[\"Authorization\"] = \"Bearer bench\"\n"
    );
    std::fs::write(&script, lua).map_err(|err| err.to_string())?;
    let threads = connections.min(2);
    let mut command = match core {
        Some(core) => {
            let mut taskset = Command::new("taskset");
            taskset.args(["-c", core, "wrk"]);
            taskset
        }
        None => Command::new("wrk"),
    };
    let output = command
        .args([
            "-t",
            &threads.to_string(),
            "-c",
            &connections.to_string(),
            "-d",
            &format!("{seconds}s"),
            "--latency",
            "-s",
        ])
        .arg(&script)
        .arg(url)
        .output()
        .map_err(|err| format!("cannot run wrk: {err}"))?;
    let text = String::from_utf8_lossy(&output.stdout);
    let load = parse_wrk(&text);
    if load.requests == 0 {
        return Err(format!("wrk made no requests to {url}:\n{text}"));
    }
    Ok(load)
}

/// One case: the same request to the upstream directly, through nginx and
/// through modelgate (whose body may differ: a translated case sends an
/// OpenAI request that modelgate turns into the upstream's dialect).
struct Case {
    name: &'static str,
    upstream_path: &'static str,
    upstream_body: Value,
    gateway_body: Value,
}

fn cases() -> Vec<Case> {
    let messages = json!([{"role": "user", "content": "Say something for the benchmark."}]);
    let openai =
        |model: &str, stream: bool| json!({"model": model, "messages": messages, "stream": stream});
    let anthropic = |stream: bool| json!({"model": "claude", "max_tokens": 256, "messages": messages, "stream": stream});
    vec![
        Case {
            name: "pass-through",
            upstream_path: "/v1/chat/completions",
            upstream_body: openai("gpt", false),
            gateway_body: openai("fast/gpt", false),
        },
        Case {
            name: "pass-through stream (20 chunks)",
            upstream_path: "/v1/chat/completions",
            upstream_body: openai("gpt", true),
            gateway_body: openai("fast/gpt", true),
        },
        Case {
            name: "translated (OpenAI -> Anthropic)",
            upstream_path: "/v1/messages",
            upstream_body: anthropic(false),
            gateway_body: openai("fastan/claude", false),
        },
        Case {
            name: "translated stream",
            upstream_path: "/v1/messages",
            upstream_body: anthropic(true),
            gateway_body: openai("fastan/claude", true),
        },
    ]
}

fn gateway_config(upstream: &str) -> String {
    format!(
        "[server]\nlisten = \"127.0.0.1:0\"\n\n\
         [[backends]]\nid = \"fast\"\ndialect = \"openai\"\nendpoint = \"http://{upstream}/v1\"\nmodels = [{{ id = \"gpt\" }}]\n\n\
         [[backends]]\nid = \"fastan\"\ndialect = \"anthropic\"\nendpoint = \"http://{upstream}\"\nmodels = [{{ id = \"claude\" }}]\n\n\
         [aliases]\ndefault = \"fast/gpt\"\n"
    )
}

fn start_gateway(
    binary: &Path,
    dir: &Path,
    name: &str,
    upstream: &str,
) -> Result<(Running, String), String> {
    let config = dir.join(name);
    std::fs::write(&config, gateway_config(upstream)).map_err(|err| err.to_string())?;
    let mut command = Command::new(binary);
    command
        .arg("--config")
        .arg(&config)
        .env("MODELGATE_LOG", "error");
    start(command, "modelgate", "modelgate listening on http://")
}

/// A table cell of µs, or `-` where there is no figure.
fn micros_cell(value: Option<f64>) -> String {
    value.map_or_else(|| "-".to_owned(), |value| format!("{value:.0} µs"))
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values.get(values.len() / 2).copied().unwrap_or(f64::NAN)
}

/// Runs the benchmark.
pub(crate) fn bench(args: &[String]) -> Result<(), String> {
    let options = Options::parse(args)?;
    ensure_tools()?;
    let profile = if options.smoke { "debug" } else { "release" };
    let mut build = cargo();
    build.args(["build", "-p", "gateway-http", "-p", "fast-upstream"]);
    if !options.smoke {
        build.arg("--release");
    }
    run(&mut build)?;
    let bin = target_dir().join(profile);
    let dir = target_dir().join("bench");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).map_err(|err| err.to_string())?;

    let mut upstream_cmd = Command::new(bin.join("fast-upstream"));
    upstream_cmd.args(["serve", "--chunks", "20"]);
    let (upstream, upstream_addr) = start(upstream_cmd, "fast-upstream", "listening on http://")?;
    let (nginx, nginx_addr) = start_nginx(&dir, &upstream_addr)?;
    let (gateway, gateway_addr) =
        start_gateway(&bin.join("modelgate"), &dir, "bench.toml", &upstream_addr)?;
    let gateway_pid = gateway.child.id();
    let nginx_pid = nginx.child.id();
    let upstream_pid = upstream.child.id();
    let pinning = can_pin();
    if !pinning {
        eprintln!("xtask: fewer than 2 cores or no taskset: no pinned concurrency-1 runs");
    }
    let all_cores = format!(
        "0-{}",
        std::thread::available_parallelism().map_or(1, usize::from) - 1
    );

    let mut figures: BTreeMap<(usize, &str, &str), Vec<Load>> = BTreeMap::new();
    let mut cpu: BTreeMap<(usize, &str), Vec<f64>> = BTreeMap::new();
    let cases = cases();
    let mut failures = Vec::new();
    for round in 0..options.rounds {
        eprintln!("xtask: bench round {}/{}", round + 1, options.rounds);
        for (index, case) in cases.iter().enumerate() {
            let mut targets = [
                (
                    "direct",
                    &upstream_addr,
                    case.upstream_path,
                    &case.upstream_body,
                    None,
                ),
                (
                    "nginx",
                    &nginx_addr,
                    case.upstream_path,
                    &case.upstream_body,
                    Some(nginx_pid),
                ),
                (
                    "modelgate",
                    &gateway_addr,
                    "/v1/chat/completions",
                    &case.gateway_body,
                    Some(gateway_pid),
                ),
            ];
            // The proxies take turns going first, so that neither is always
            // measured in the state the other leaves the machine in (its
            // sockets closing, its core's caches and idle state).
            if round % 2 == 1 {
                targets.swap(1, 2);
            }
            for (target, addr, path, body, pid) in targets {
                let url = format!("http://{addr}{path}");
                let before = pid.map(cpu_micros).unwrap_or(0);
                let load = wrk(&dir, &url, body, 64, options.seconds, None)?;
                if let Some(pid) = pid {
                    let used = cpu_micros(pid).saturating_sub(before) as f64;
                    cpu.entry((index, target))
                        .or_default()
                        .push(used / load.requests.max(1) as f64);
                }
                let single = wrk(&dir, &url, body, 1, options.seconds.div_ceil(2), None)?;
                let mut runs = vec![("c64", load), ("c1", single)];
                if pinning {
                    place(upstream_pid, pid, CLIENT_CORE, PROXY_CORE)?;
                    let pinned = wrk(
                        &dir,
                        &url,
                        body,
                        1,
                        options.seconds.div_ceil(2),
                        Some(CLIENT_CORE),
                    );
                    place(upstream_pid, pid, &all_cores, &all_cores)?;
                    runs.push(("c1 pinned", pinned?));
                }
                for (label, run) in &runs {
                    if run.errors > 0 {
                        failures.push(format!(
                            "{} via {target} ({label}): {} errors",
                            case.name, run.errors
                        ));
                    }
                }
                for (label, run) in runs {
                    figures.entry((index, target, label)).or_default().push(run);
                }
            }
        }
    }
    drop(gateway);
    drop(nginx);

    let memory = memory_case(&bin, &dir, options.streams)?;
    drop(upstream);

    let mut rows = Vec::new();
    let mut table = String::new();
    let _ = writeln!(
        table,
        "| case | target | RPS (c64) | p50 | p99 | added p50 (c1) | added mean (c1) | p50 (c1, pinned) | CPU µs/req | RPS vs nginx | CPU vs nginx |\n|---|---|---|---|---|---|---|---|---|---|---|"
    );
    for (index, case) in cases.iter().enumerate() {
        // Every round's figure, and their median.
        let each = |target: &str, concurrency: &str, get: fn(&Load) -> f64| -> Vec<f64> {
            figures
                .get(&(index, target, concurrency))
                .map(|runs| runs.iter().map(get).collect())
                .unwrap_or_default()
        };
        let pick = |target: &str, concurrency: &str, get: fn(&Load) -> f64| {
            median(&mut each(target, concurrency, get))
        };
        let direct_p50_c1 = pick("direct", "c1", |l| l.p50_us);
        let direct_mean_c1 = pick("direct", "c1", |l| l.mean_us);
        let nginx_rps = pick("nginx", "c64", |l| l.rps);
        let nginx_cpu = cpu
            .get(&(index, "nginx"))
            .map(|v| median(&mut v.clone()))
            .unwrap_or(f64::NAN);
        for target in ["direct", "nginx", "modelgate"] {
            let rps = pick(target, "c64", |l| l.rps);
            let p50 = pick(target, "c64", |l| l.p50_us);
            let p99 = pick(target, "c64", |l| l.p99_us);
            let added = pick(target, "c1", |l| l.p50_us) - direct_p50_c1;
            let added_mean = pick(target, "c1", |l| l.mean_us) - direct_mean_c1;
            let pinned = pick(target, "c1 pinned", |l| l.p50_us);
            let cpu_us = cpu.get(&(index, target)).map(|v| median(&mut v.clone()));
            let (rps_ratio, cpu_ratio) = if target == "modelgate" {
                (
                    format!("{:.2}", rps / nginx_rps),
                    cpu_us
                        .map(|c| format!("{:.2}", c / nginx_cpu))
                        .unwrap_or_default(),
                )
            } else {
                (String::new(), String::new())
            };
            let _ = writeln!(
                table,
                "| {} | {target} | {rps:.0} | {:.0} µs | {:.0} µs | {} | {} | {} | {} | {rps_ratio} | {cpu_ratio} |",
                case.name,
                p50,
                p99,
                micros_cell((target != "direct").then_some(added)),
                micros_cell((target != "direct").then_some(added_mean)),
                micros_cell((!pinned.is_nan()).then_some(pinned)),
                cpu_us
                    .map(|c| format!("{c:.0}"))
                    .unwrap_or_else(|| "-".to_owned()),
            );
            // Every round's figures beside the medians: the c1 latency
            // in particular moves by more between rounds than the gap it
            // is read for.
            rows.push(json!({
                "case": case.name, "target": target, "rps": rps, "p50_us": p50, "p99_us": p99,
                "added_p50_us_c1": if target == "direct" { Value::Null } else { json!(added) },
                "added_mean_us_c1": if target == "direct" { Value::Null } else { json!(added_mean) },
                "p50_us_c1_pinned": if pinned.is_nan() { Value::Null } else { json!(pinned) },
                "cpu_us_per_request": cpu_us,
                "rounds": {
                    "rps": each(target, "c64", |l| l.rps),
                    "p50_us_c1": each(target, "c1", |l| l.p50_us),
                    "mean_us_c1": each(target, "c1", |l| l.mean_us),
                    "p50_us_c1_pinned": each(target, "c1 pinned", |l| l.p50_us),
                    "mean_us_c1_pinned": each(target, "c1 pinned", |l| l.mean_us),
                    "cpu_us_per_request": cpu.get(&(index, target)).cloned().unwrap_or_default(),
                },
            }));
        }
    }
    let _ = writeln!(
        table,
        "\nMemory: idle RSS {:.1} MiB; {} open streams: {:.1} KiB RSS per stream",
        memory.idle_kib as f64 / 1024.0,
        memory.streams,
        memory.per_stream_kib
    );
    println!("{table}");
    if memory.failed > 0 {
        failures.push(format!(
            "memory case: {} streams failed to open",
            memory.failed
        ));
    }
    let report = json!({
        "when": SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0),
        "profile": profile,
        "seconds_per_run": options.seconds,
        "rounds": options.rounds,
        "machine": { "cores": std::thread::available_parallelism().map(usize::from).unwrap_or(0) },
        "results": rows,
        "memory": { "idle_rss_kib": memory.idle_kib, "streams": memory.streams, "rss_per_stream_kib": memory.per_stream_kib },
    });
    let out = if options.smoke {
        dir.join("smoke.json")
    } else {
        let results = root().join("bench/results");
        std::fs::create_dir_all(&results).map_err(|err| err.to_string())?;
        results.join(format!("{}.json", report["when"]))
    };
    let text = serde_json::to_string_pretty(&report).map_err(|err| err.to_string())?;
    std::fs::write(&out, text).map_err(|err| err.to_string())?;
    eprintln!("xtask: wrote {}", out.display());
    if failures.is_empty() {
        Ok(())
    } else {
        Err(format!("bench runs had errors:\n{}", failures.join("\n")))
    }
}

struct Memory {
    idle_kib: u64,
    streams: usize,
    per_stream_kib: f64,
    failed: usize,
}

/// Idle RSS of a fresh gateway, then RSS per open stream with `streams`
/// slow streams (a chunk a second) held open through it.
fn memory_case(bin: &Path, dir: &Path, streams: usize) -> Result<Memory, String> {
    let mut slow_cmd = Command::new(bin.join("fast-upstream"));
    slow_cmd.args(["serve", "--chunks", "100000", "--delay-ms", "1000"]);
    let (_slow, slow_addr) = start(slow_cmd, "fast-upstream", "listening on http://")?;
    let (gateway, gateway_addr) =
        start_gateway(&bin.join("modelgate"), dir, "memory.toml", &slow_addr)?;
    let pid = gateway.child.id();
    let idle_kib = rss_kib(pid);
    let mut hold = Command::new(bin.join("fast-upstream"));
    hold.args([
        "hold",
        "--url",
        &format!("http://{gateway_addr}/v1/chat/completions"),
        "--body",
        r#"{"model":"fast/gpt","stream":true,"messages":[{"role":"user","content":"hold"}]}"#,
        "--count",
        &streams.to_string(),
    ]);
    let (_holder, holding) = start(hold, "fast-upstream hold", "holding ")?;
    let failed: usize = holding
        .split_whitespace()
        .nth(2)
        .and_then(|n| n.parse().ok())
        .unwrap_or(streams);
    let open_kib = rss_kib(pid);
    let held = streams.saturating_sub(failed).max(1);
    Ok(Memory {
        idle_kib,
        streams,
        per_stream_kib: open_kib.saturating_sub(idle_kib) as f64 / held as f64,
        failed,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrk_output_is_read() {
        let output = "Running 1s test @ http://127.0.0.1:1/\n  2 threads and 64 connections\n  Thread Stats   Avg      Stdev     Max   +/- Stdev\n    Latency   601.50us    1.20ms  20.00ms   95.00%\n  Latency Distribution\n     50%  412.00us\n     75%  1.02ms\n     90%    2.10ms\n     99%    5.50ms\n  51234 requests in 1.00s, 12.00MB read\n  Socket errors: connect 0, read 2, write 0, timeout 1\n  Non-2xx or 3xx responses: 4\nRequests/sec:  51234.56\n";
        let load = parse_wrk(output);
        assert_eq!(load.requests, 51234);
        assert_eq!(load.errors, 7);
        assert!((load.p50_us - 412.0).abs() < 1e-6);
        assert!((load.mean_us - 601.5).abs() < 1e-6);
        assert!((load.p99_us - 5500.0).abs() < 1e-6);
        assert!((load.rps - 51234.56).abs() < 1e-6);
    }
}
