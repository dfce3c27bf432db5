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
    /// Store directory [default: ./recostore-data, or the config file's `serve.dir`].
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Admin socket path [default: <DIR>/admin.sock].
    #[arg(long)]
    socket: Option<PathBuf>,
    /// Connections served at once [default: 128].
    #[arg(long)]
    max_connections: Option<usize>,
    /// Serve the store's metrics (Prometheus / OpenMetrics text) over HTTP at this address,
    /// e.g. 127.0.0.1:9464, on `GET /metrics`. Off by default.
    #[arg(long, value_name = "ADDR")]
    metrics: Option<String>,
    /// Settings from a TOML file: `[serve]` (dir, socket, admin limits) and `[store]` (every
    /// field of the library's `Config`); flags given here win over it. Unknown keys are
    /// errors. See recostore.example.toml.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Publish the store to this object store address every --publish-every seconds, for
    /// replicas to follow (`file:///dir`, a path, or a cloud URL this build reaches). Each
    /// publish writes the store as of one instant first: writes wait for it, queries do
    /// not. A round with no write, fold or plugin change since the last is skipped.
    #[arg(long, value_name = "URL", conflicts_with = "follow")]
    publish: Option<String>,
    /// Seconds between publishes.
    #[arg(long, value_name = "SECS", default_value_t = 10.0)]
    publish_every: f64,
    /// Serve a read-only replica that follows the generations a leader publishes at this
    /// address. --dir is then the replica's own directory (its cache and generations), and
    /// writes over the socket answer `read_only`.
    #[arg(long, value_name = "URL")]
    follow: Option<String>,
    /// Seconds between a replica's polls for a new generation.
    #[arg(long, value_name = "SECS", default_value_t = 1.0)]
    poll_every: f64,
}

/// `secs` as a duration, refused unless finite and positive.
fn seconds(flag: &str, secs: f64) -> Result<Duration, String> {
    if secs.is_finite() && secs > 0.0 && secs < 1e9 {
        Ok(Duration::from_secs_f64(secs))
    } else {
        Err(format!("{flag} {secs}: give a number of seconds above 0"))
    }
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
    /// For `stats`: `json` (the default) or `prometheus`, the OpenMetrics text that
    /// `serve --metrics` serves. The same as the argument `format=prometheus`.
    #[arg(long, value_name = "FORMAT")]
    format: Option<String>,
    /// JSON lines (the formats of `import jsonl`) for events.record, item.upsert or
    /// user.upsert, sent in batches of up to 512 KiB; each batch is stored all or nothing, and
    /// a bad line stops the run with the count stored before it.
    #[arg(long, value_name = "PATH")]
    file: Option<PathBuf>,
    /// The command: ping, help, stats, item.get, user.get, query, users.like, segment.users,
    /// events.record, item.upsert|delete, user.upsert|delete,
    /// plugin.list|load|swap|promote|replay|rollback|unload|enable, slot.route|remove|stats, segment.rebuild,
    /// segment.save_delta, flush, checkpoint, reclaim, backup, export, log.level (PROTOCOL.md
    /// has an example of each).
    cmd: String,
    /// Arguments as KEY=VALUE (VALUE is JSON if it parses, else a string), or one JSON object.
    /// E.g. `id=i01`, `scenario=for-user user=u1 k=5`, `'variants=[{"strategy":"a9","weight":1}]'`.
    args: Vec<String>,
}

/// Run `recostore serve` until SIGINT or SIGTERM.
pub fn serve(a: ServeArgs) -> Result<ExitCode, Box<dyn std::error::Error>> {
    let mut file = match &a.config {
        Some(path) => crate::config_file::read(path)?,
        None => crate::config_file::ConfigFile::default(),
    };
    if let Some(dir) = a.dir {
        file.serve.dir = dir;
    }
    if let Some(socket) = a.socket {
        file.serve.socket = Some(socket);
    }
    if let Some(n) = a.max_connections {
        file.serve.max_connections = n;
    }
    let dir = file.serve.dir.clone();
    let replica = match &a.follow {
        Some(url) => {
            let mut source = recostore::ReplicaSource::from_url(url)?;
            source.poll_every = Some(seconds("--poll-every", a.poll_every)?);
            source.config = file.store.clone();
            let replica = Store::open_replica(&dir, source)?;
            eprintln!(
                "following {url}: generation {} (polling every {} s)",
                replica.status().generation,
                a.poll_every
            );
            Some(replica)
        }
        None => None,
    };
    let store = match &replica {
        Some(r) => r.store(),
        None => Store::open_with(&dir, file.store)?,
    };
    if let Some(ns) = crate::namespace() {
        // Checked (and created) now, not at the first request.
        store.namespace(ns)?;
    }
    let socket = file
        .serve
        .socket
        .clone()
        .unwrap_or_else(|| dir.join("admin.sock"));
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, stop.clone())?;
    }
    let opts = AdminOptions {
        log_level: crate::log_level_hook(),
        namespace: crate::namespace().map(String::from),
        ..file.serve.admin_options()
    };
    let server = match &replica {
        Some(r) => recostore::admin::AdminServer::start_replica(r, &socket, opts)?,
        None => recostore::admin::AdminServer::start_with(&store, &socket, opts)?,
    };
    let publisher = match &a.publish {
        Some(url) => {
            let (to, prefix) = recostore::replica::object_store_from_url(url)?;
            let every = seconds("--publish-every", a.publish_every)?;
            eprintln!("publishing to {url} every {} s", every.as_secs_f64());
            Some(store.start_publisher(to, prefix, every, recostore::PublishOptions::default())?)
        }
        None => None,
    };
    let metrics = match &a.metrics {
        Some(addr) => Some(serve_metrics(&store, replica.clone(), addr)?),
        None => None,
    };
    eprintln!(
        "recostore serving {} on {} (SIGINT or SIGTERM stops it)",
        dir.display(),
        socket.display()
    );
    while !stop.load(Ordering::SeqCst) {
        std::thread::sleep(Duration::from_millis(50));
    }
    if let Some((http, thread)) = metrics {
        http.unblock();
        let _ = thread.join();
    }
    if let Some(p) = publisher {
        let st = p.stop();
        eprintln!(
            "publisher stopped: {} generations published, {} rounds skipped (nothing new), {} failed",
            st.published, st.skipped, st.failed
        );
    }
    eprintln!("stopping: finishing requests in flight, flushing, removing the socket");
    server.shutdown()?;
    drop(server);
    drop(store);
    Ok(ExitCode::SUCCESS)
}

/// Fields that hold ids or names in every command: their VALUE is a string whatever it looks
/// like (customer `17850` and stock code `22423` are ids, not numbers).
const STRING_FIELDS: [&str; 9] = [
    "id",
    "user",
    "item",
    "name",
    "slot",
    "strategy",
    "recipient",
    "path",
    "scenario",
];
/// Fields that hold lists of ids: numbers in a JSON array become strings.
const ID_LIST_FIELDS: [&str; 3] = ["items", "keywords", "exclude_items"];

/// `GET /metrics` on `addr`, answered from `store` (or, following, from the replica's current
/// generation) on a thread of its own; anything else is a 404. The caller stops it with `unblock` and joins the thread.
fn serve_metrics(
    store: &Store,
    replica: Option<recostore::Replica>,
    addr: &str,
) -> Result<(Arc<tiny_http::Server>, std::thread::JoinHandle<()>), Box<dyn std::error::Error>> {
    let http = Arc::new(
        tiny_http::Server::http(addr)
            .map_err(|e| format!("--metrics {addr}: cannot listen there: {e}"))?,
    );
    eprintln!("metrics on http://{addr}/metrics");
    let (server, store) = (http.clone(), store.clone());
    let content_type = tiny_http::Header::from_bytes(
        &b"Content-Type"[..],
        &b"application/openmetrics-text; version=1.0.0; charset=utf-8"[..],
    )
    .map_err(|()| "a bad header constant")?;
    let thread = std::thread::Builder::new()
        .name("recostore-metrics".into())
        .spawn(move || {
            for request in server.incoming_requests() {
                let url = request.url().split('?').next().unwrap_or("");
                let response = if *request.method() == tiny_http::Method::Get && url == "/metrics" {
                    let text = match &replica {
                        Some(r) => recostore::admin::prometheus::replica_text(r),
                        None => recostore::admin::prometheus::text(&store),
                    };
                    tiny_http::Response::from_string(text)
                        .with_header(content_type.clone())
                        .boxed()
                } else {
                    tiny_http::Response::from_string("not found: the metrics are at GET /metrics\n")
                        .with_status_code(404)
                        .boxed()
                };
                if let Err(e) = request.respond(response) {
                    tracing::debug!(error = %e, "a metrics client went away");
                }
            }
        })?;
    Ok((http, thread))
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
        let value = if STRING_FIELDS.contains(&k) {
            Value::String(v.to_string())
        } else {
            match serde_json::from_str(v) {
                Ok(Value::Array(list)) if ID_LIST_FIELDS.contains(&k) => Value::Array(
                    list.into_iter()
                        .map(|x| match x {
                            Value::Number(n) => Value::String(n.to_string()),
                            other => other,
                        })
                        .collect(),
                ),
                Ok(v) => v,
                Err(_) => Value::String(v.to_string()),
            }
        };
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
    let mut args = parse_args(&a.args)?;
    if let Some(format) = &a.format {
        if a.cmd != "stats" {
            return Err(format!("--format is for `stats`, not `{}`", a.cmd).into());
        }
        match &mut args {
            Value::Null => args = serde_json::json!({ "format": format }),
            Value::Object(map) if !map.contains_key("format") => {
                map.insert("format".into(), format.clone().into());
            }
            _ => return Err("give --format or a format= argument, not both".into()),
        }
    }
    let mut client = match AdminClient::connect(&socket, Duration::from_secs(a.timeout_secs)) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return Ok(ExitCode::from(4));
        }
    };
    client.set_namespace(crate::namespace().map(String::from));
    if let Some(path) = &a.file {
        if !a.args.is_empty() {
            return Err("give --file or arguments, not both".into());
        }
        return send_file(&mut client, &a.cmd, path, a.json);
    }
    let resp = client.call(&a.cmd, args)?;
    if a.json {
        output::json(&resp)?;
    }
    if let Some(err) = &resp.error {
        if !a.json {
            eprintln!("error ({:?}): {}", err.code, err.message);
        }
        return Ok(exit_code(&err.code));
    }
    if !a.json {
        let result = resp.result.as_ref().unwrap_or(&Value::Null);
        match result.get("text").and_then(Value::as_str) {
            // `stats format=prometheus`: the exposition text as it is.
            Some(text) if result.get("format").is_some() => print!("{text}"),
            _ => print_table(&a.cmd, result),
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Bytes of JSON lines per request of `--file`: half the server's default line limit.
const FILE_BATCH_BYTES: usize = 512 << 10;
/// The longest line `--file` reads (one batch): a file with no newlines (`/dev/zero`) is an
/// error, not a wait for memory to run out.
const FILE_LINE_BYTES: u64 = FILE_BATCH_BYTES as u64;

/// The exit code of an error response.
fn exit_code(code: &Code) -> ExitCode {
    ExitCode::from(match code {
        Code::NotFound => 3,
        Code::BadArgs | Code::UnknownCommand | Code::BadJson => 2,
        _ => 1,
    })
}

/// `recostore admin CMD --file PATH`: the file's JSON lines in batches.
fn send_file(
    client: &mut AdminClient,
    cmd: &str,
    path: &std::path::Path,
    json: bool,
) -> Result<ExitCode, Box<dyn std::error::Error>> {
    use std::io::{BufRead, Read};
    let key = match cmd {
        "events.record" => "events",
        "item.upsert" => "items",
        "user.upsert" => "users",
        other => {
            return Err(format!(
                "--file goes with events.record, item.upsert or user.upsert, not `{other}`"
            )
            .into())
        }
    };
    let file =
        std::fs::File::open(path).map_err(|e| format!("cannot open {}: {e}", path.display()))?;
    let mut reader = std::io::BufReader::new(file);
    let (mut batch, mut bytes, mut stored, mut line_no, mut first) =
        (Vec::new(), 0usize, 0u64, 0u64, 1u64);
    let mut send = |batch: &mut Vec<Value>,
                    first: u64,
                    stored: &mut u64|
     -> Result<Option<ExitCode>, Box<dyn std::error::Error>> {
        if batch.is_empty() {
            return Ok(None);
        }
        let n = batch.len() as u64;
        let resp = client.call(cmd, serde_json::json!({ key: std::mem::take(batch) }))?;
        if let Some(err) = &resp.error {
            eprintln!(
                "error ({:?}) in the batch of lines {first}..{}: {}",
                err.code,
                first + n - 1,
                err.message
            );
            eprintln!("{stored} {key} from the lines before it were stored");
            return Ok(Some(exit_code(&err.code)));
        }
        *stored += n;
        Ok(None)
    };
    let mut buf = Vec::new();
    loop {
        buf.clear();
        let got = (&mut reader)
            .take(FILE_LINE_BYTES + 1)
            .read_until(b'\n', &mut buf)
            .map_err(|e| format!("reading {}: {e}", path.display()))?;
        if got == 0 {
            break;
        }
        line_no += 1;
        if buf.len() as u64 > FILE_LINE_BYTES {
            return Err(format!(
                "{}:{line_no}: a line longer than {} bytes; is this a JSON lines file? \
                 ({stored} {key} stored before it)",
                path.display(),
                FILE_LINE_BYTES
            )
            .into());
        }
        let text = String::from_utf8_lossy(&buf);
        if text.trim().is_empty() {
            continue;
        }
        let v: Value = serde_json::from_str(&text).map_err(|e| {
            format!(
                "{}:{line_no}: not JSON: {e} ({stored} {key} stored before it)",
                path.display()
            )
        })?;
        // Send what is gathered before it would pass the batch size with this line.
        if !batch.is_empty() && bytes + buf.len() > FILE_BATCH_BYTES {
            if let Some(code) = send(&mut batch, first, &mut stored)? {
                return Ok(code);
            }
            bytes = 0;
        }
        if batch.is_empty() {
            first = line_no;
        }
        bytes += buf.len();
        batch.push(v);
    }
    if let Some(code) = send(&mut batch, first, &mut stored)? {
        return Ok(code);
    }
    if json {
        output::json(&serde_json::json!({ "stored": stored, "kind": key }))?;
    } else {
        println!("{stored} {key} stored from {}", path.display());
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
        // The rows above hold what every variant has; interleaved teams and shadows have
        // more, one line each below the table.
        "slot.stats" => {
            rows(
                result,
                &[
                    "slot",
                    "strategy",
                    "version",
                    "mode",
                    "serves",
                    "impressions",
                    "clicks",
                    "purchases",
                    "fallbacks",
                    "ctr",
                    "conversion",
                ],
            );
            for r in result.as_array().into_iter().flatten() {
                let who = format!(
                    "{}@{} on {}",
                    cell(&r["strategy"]),
                    cell(&r["version"]),
                    cell(&r["slot"])
                );
                let i = &r["interleave"];
                if i.is_object() {
                    println!(
                        "{who} interleaved against {}: {} wins, {} losses, {} ties in {} answers; sign test p = {} (valid for one look)",
                        cell(&i["against"]), cell(&i["wins"]), cell(&i["losses"]), cell(&i["ties"]),
                        cell(&i["answers"]),
                        match i["p_value"].as_f64() {
                            Some(p) if p < 1e-3 => format!("{p:.2e}"),
                            _ => cell(&i["p_value"]),
                        }
                    );
                }
                let h = &r["shadow"];
                if h.is_object() {
                    let f = &h["faults"];
                    let faults: u64 = f
                        .as_object()
                        .into_iter()
                        .flatten()
                        .filter_map(|(_, v)| v.as_u64())
                        .sum();
                    let bad = |b: &Value| {
                        format!(
                            "{} out of stock, {} filtered, {} bought",
                            cell(&b["out_of_stock"]),
                            cell(&b["filtered"]),
                            cell(&b["purchased"])
                        )
                    };
                    println!(
                        "{who} shadow (sample {}): {} sampled, {} dropped, {} ranked, {faults} faults; p50 <= {} µs, p99 <= {} µs; \
                         overlap@k {} and rank correlation {} over {} compared; would show {} (served: {})",
                        cell(&h["sample"]), cell(&h["sampled"]), cell(&h["dropped"]), cell(&h["calls"]),
                        cell(&h["p50_us"]), cell(&h["p99_us"]), cell(&h["overlap"]),
                        cell(&h["rank_correlation"]), cell(&h["compared"]),
                        bad(&h["would_show"]), bad(&h["served_shows"])
                    );
                }
            }
        }
        "query" => {
            println!("rank\tscore\tid\ttitle");
            for (i, r) in result["results"]
                .as_array()
                .into_iter()
                .flatten()
                .enumerate()
            {
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

    /// The README's own data set: customer and stock-code ids that look like numbers.
    #[test]
    fn ids_stay_strings_whatever_they_look_like() {
        let v = parse_args(&["id=17850".into()]).expect("args");
        assert_eq!(v, serde_json::json!({"id": "17850"}));
        let v = parse_args(&[
            "scenario=cart".into(),
            "user=17850".into(),
            "items=[22423, \"85123A\"]".into(),
            "k=3".into(),
        ])
        .expect("args");
        assert_eq!(
            v,
            serde_json::json!({"scenario": "cart", "user": "17850", "items": ["22423", "85123A"], "k": 3})
        );
    }
}
