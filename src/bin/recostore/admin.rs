//! `recostore serve` (the admin socket in front of a store) and `recostore admin` (its client).

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use clap::Args;
use recostore::admin::protocol::Code;
use recostore::admin::{AdminClient, AdminOptions};
use recostore::Store;
use serde_json::{Map, Value};

use crate::output;

#[derive(Args)]
pub struct ServeArgs {
    /// Store directory.
    #[arg(long, default_value = crate::DEFAULT_DIR)]
    dir: PathBuf,
    /// Admin socket path [default: <DIR>/admin.sock].
    #[arg(long)]
    socket: Option<PathBuf>,
    /// Connections served at once.
    #[arg(long, default_value_t = 128)]
    max_connections: usize,
}

#[derive(Args)]
pub struct AdminArgs {
    /// Admin socket path [default: ./recostore-data/admin.sock].
    #[arg(long)]
    socket: Option<PathBuf>,
    /// Print the raw JSON response instead of a table.
    #[arg(long)]
    json: bool,
    /// Seconds to wait for the server.
    #[arg(long, default_value_t = 60)]
    timeout_secs: u64,
    /// The command: ping, help, stats, item.get, user.get, query, users.like, segment.users,
    /// plugin.list|load|swap|rollback|unload|enable, slot.route|remove|stats, segment.rebuild,
    /// flush, backup, export, log.level (PROTOCOL.md has an example of each).
    cmd: String,
    /// Arguments as KEY=VALUE (VALUE is JSON if it parses, else a string), or one JSON object.
    /// E.g. `id=i01`, `scenario=for-user user=u1 k=5`, `'variants=[{"strategy":"a9","weight":1}]'`.
    args: Vec<String>,
}

/// Run `recostore serve` until SIGINT or SIGTERM.
pub fn serve(a: ServeArgs) -> Result<ExitCode, Box<dyn std::error::Error>> {
    let store = Store::open(&a.dir)?;
    let socket = a.socket.unwrap_or_else(|| a.dir.join("admin.sock"));
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, stop.clone())?;
    }
    let opts = AdminOptions {
        max_connections: a.max_connections,
        log_level: crate::log_level_hook(),
        ..AdminOptions::default()
    };
    let server = recostore::admin::AdminServer::start_with(&store, &socket, opts)?;
    eprintln!(
        "recostore serving {} on {} (SIGINT or SIGTERM stops it)",
        a.dir.display(),
        socket.display()
    );
    while !stop.load(Ordering::SeqCst) {
        std::thread::sleep(Duration::from_millis(50));
    }
    eprintln!("stopping: finishing requests in flight, flushing, removing the socket");
    server.shutdown()?;
    drop(server);
    drop(store);
    Ok(ExitCode::SUCCESS)
}

/// Turn `KEY=VALUE` words (or one JSON object) into the request's args.
fn parse_args(words: &[String]) -> Result<Value, String> {
    if let [one] = words {
        if one.trim_start().starts_with('{') {
            return serde_json::from_str(one).map_err(|e| format!("args: not a JSON object: {e}"));
        }
    }
    let mut map = Map::new();
    for w in words {
        let (k, v) = w
            .split_once('=')
            .ok_or_else(|| format!("argument `{w}` is not KEY=VALUE"))?;
        let value = serde_json::from_str(v).unwrap_or_else(|_| Value::String(v.to_string()));
        map.insert(k.to_string(), value);
    }
    Ok(if map.is_empty() {
        Value::Null
    } else {
        Value::Object(map)
    })
}

/// Run `recostore admin`: one request, printed as a table or as JSON.
pub fn admin(a: AdminArgs) -> Result<ExitCode, Box<dyn std::error::Error>> {
    let socket = a
        .socket
        .unwrap_or_else(|| PathBuf::from(crate::DEFAULT_DIR).join("admin.sock"));
    let args = parse_args(&a.args)?;
    let mut client = match AdminClient::connect(&socket, Duration::from_secs(a.timeout_secs)) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return Ok(ExitCode::from(4));
        }
    };
    let resp = client.call(&a.cmd, args)?;
    if a.json {
        output::json(&resp)?;
    }
    if let Some(err) = &resp.error {
        if !a.json {
            eprintln!("error ({:?}): {}", err.code, err.message);
        }
        return Ok(ExitCode::from(match err.code {
            Code::NotFound => 3,
            Code::BadArgs | Code::UnknownCommand | Code::BadJson => 2,
            _ => 1,
        }));
    }
    if !a.json {
        print_table(&a.cmd, resp.result.as_ref().unwrap_or(&Value::Null));
    }
    Ok(ExitCode::SUCCESS)
}

fn cell(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => "-".into(),
        Value::Number(n) => match n.as_f64() {
            Some(f) if n.is_f64() => format!("{f:.4}"),
            _ => n.to_string(),
        },
        other => other.to_string(),
    }
}

fn rows(result: &Value, cols: &[&str]) {
    println!("{}", cols.join("\t"));
    for r in result.as_array().into_iter().flatten() {
        let line: Vec<String> = cols.iter().map(|c| cell(&r[*c])).collect();
        println!("{}", line.join("\t"));
    }
}

/// Print `key: value` for every leaf of an object, with dotted paths.
fn flat(prefix: &str, v: &Value) {
    match v {
        Value::Object(m) => {
            for (k, v) in m {
                let p = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                flat(&p, v);
            }
        }
        other => println!("{prefix:<28} {}", cell(other)),
    }
}

fn print_table(cmd: &str, result: &Value) {
    match cmd {
        "help" => {
            for c in result.as_array().into_iter().flatten() {
                println!("{:<16} {}", cell(&c["cmd"]), cell(&c["about"]));
            }
        }
        "plugin.list" => rows(
            result,
            &[
                "name",
                "version",
                "previous",
                "calls",
                "non_finite_scores",
                "disabled",
                "slots",
            ],
        ),
        "slot.stats" => rows(
            result,
            &[
                "slot",
                "strategy",
                "version",
                "serves",
                "impressions",
                "clicks",
                "purchases",
                "fallbacks",
                "ctr",
                "conversion",
            ],
        ),
        "query" => {
            println!("rank\tscore\tid\ttitle");
            for (i, r) in result["items"].as_array().into_iter().flatten().enumerate() {
                println!(
                    "{}\t{}\t{}\t{}",
                    i + 1,
                    cell(&r["score"]),
                    cell(&r["id"]),
                    cell(&r["title"])
                );
            }
            let by = &result["ranked_by"];
            println!(
                "ranked by {} {}",
                cell(&by["strategy"]),
                cell(&by["version"])
            );
        }
        _ => flat("", result),
    }
}

#[cfg(test)]
mod tests {
    use super::parse_args;

    #[test]
    fn key_values_become_json_args() {
        let v = parse_args(&["id=i01".into(), "k=5".into(), "x=[1,2]".into()]).expect("args");
        assert_eq!(v, serde_json::json!({"id": "i01", "k": 5, "x": [1, 2]}));
        assert_eq!(parse_args(&[]).expect("none"), serde_json::Value::Null);
        assert!(parse_args(&["novalue".into()]).is_err());
        assert_eq!(
            parse_args(&[r#"{"a": 1}"#.into()]).expect("json"),
            serde_json::json!({"a": 1})
        );
    }
}
