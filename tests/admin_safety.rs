//! The admin socket under hostile or careless clients: bad input gets an error or a closed
//! connection, the process and the data are unharmed, the socket is owner-only, and a live
//! socket is never stolen.
// Drives the admin socket, plugins included: needs the `admin` and `plugins` features.
#![cfg(all(feature = "admin", feature = "plugins"))]

mod plugin_support;

use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::time::Duration;

use plugin_support::shop;
use recostore::admin::protocol::{Code, Response};
use recostore::admin::{AdminClient, AdminOptions};
use recostore::PluginLimits;
use serde_json::{json, Value};

fn raw(path: &std::path::Path) -> UnixStream {
    let s = UnixStream::connect(path).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(20)))
        .expect("timeout");
    s
}

/// Send `bytes`, read one response line.
fn exchange(path: &std::path::Path, bytes: &[u8]) -> Option<Response> {
    let mut s = raw(path);
    s.write_all(bytes).ok()?;
    let mut got = Vec::new();
    let mut b = [0u8; 1];
    while s.read(&mut b).ok()? == 1 {
        if b[0] == b'\n' {
            break;
        }
        got.push(b[0]);
    }
    serde_json::from_slice(&got).ok()
}

fn error_code(r: Option<Response>) -> Code {
    r.expect("a response").error.expect("an error").code
}

#[test]
fn bad_input_corpus_leaves_the_store_answering_and_intact() {
    let (dir, store) = shop(PluginLimits::default());
    let sock = dir.path().join("admin.sock");
    let _server = recostore::admin::AdminServer::start_with(
        &store,
        &sock,
        AdminOptions {
            request_timeout: Duration::from_millis(500),
            ..AdminOptions::default()
        },
    )
    .expect("serve");
    let before = store.stats();

    assert_eq!(error_code(exchange(&sock, b"{not json\n")), Code::BadJson);
    assert_eq!(error_code(exchange(&sock, b"[1, 2, 3]\n")), Code::BadJson);
    assert_eq!(
        error_code(exchange(&sock, b"{\"cmd\": 7}\n")),
        Code::BadJson
    );
    assert_eq!(
        error_code(exchange(&sock, b"{\"cmd\": \"ping\", \"extra\": 1}\n")),
        Code::BadJson
    );
    assert_eq!(
        error_code(exchange(
            &sock,
            b"{\"cmd\": \"item.get\", \"args\": {\"id\": [1]}}\n"
        )),
        Code::BadArgs
    );
    assert_eq!(
        error_code(exchange(
            &sock,
            b"{\"cmd\": \"query\", \"args\": {\"scenario\": \"trending\", \"k\": -1}}\n"
        )),
        Code::BadArgs
    );
    assert_eq!(
        error_code(exchange(
            &sock,
            b"{\"cmd\": \"query\", \"args\": {\"scenario\": \"trending\", \"k\": 100000}}\n"
        )),
        Code::BadArgs
    );
    // Binary garbage, with a newline somewhere in it.
    let garbage: Vec<u8> = (0..4096u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .chain([b'\n'])
        .collect();
    assert_eq!(error_code(exchange(&sock, &garbage)), Code::BadJson);
    // A line over the 1 MiB cap: refused and closed.
    let huge = vec![b'x'; (1 << 20) + 10];
    assert_eq!(error_code(exchange(&sock, &huge)), Code::TooLarge);
    // Half a request, then silence: timed out and closed.
    assert_eq!(
        error_code(exchange(&sock, b"{\"cmd\": \"pi")),
        Code::Timeout
    );
    // Half a request, then gone.
    {
        let mut s = raw(&sock);
        s.write_all(b"{\"cmd\": \"stats\", \"ar").expect("write");
    }
    // Connect and leave at once.
    drop(raw(&sock));

    // 100 concurrent clients, each pipelining pings and reads.
    std::thread::scope(|scope| {
        for t in 0..100 {
            let sock = sock.clone();
            scope.spawn(move || {
                let mut c = AdminClient::connect(&sock, Duration::from_secs(30)).expect("connect");
                for i in 0..5 {
                    let r = if i % 2 == 0 {
                        c.call("ping", Value::Null)
                    } else {
                        c.call("item.get", json!({"id": format!("i{:02}", t % 30)}))
                    }
                    .expect("response");
                    assert!(r.ok, "{:?}", r.error);
                }
            });
        }
    });

    let mut c = AdminClient::connect(&sock, Duration::from_secs(10)).expect("connect");
    assert!(c.call("ping", Value::Null).expect("ping").ok);
    let after = store.stats();
    assert_eq!(
        (after.items, after.users, after.events),
        (before.items, before.users, before.events)
    );
    assert_eq!(store.get_item("i07").expect("intact").price, 26.0);
}

#[test]
fn connections_over_the_cap_are_told_busy() {
    let (dir, store) = shop(PluginLimits::default());
    let sock = dir.path().join("admin.sock");
    let _server = recostore::admin::AdminServer::start_with(
        &store,
        &sock,
        AdminOptions {
            max_connections: 2,
            ..AdminOptions::default()
        },
    )
    .expect("serve");
    let mut a = AdminClient::connect(&sock, Duration::from_secs(10)).expect("a");
    let mut b = AdminClient::connect(&sock, Duration::from_secs(10)).expect("b");
    assert!(a.call("ping", Value::Null).expect("a").ok);
    assert!(b.call("ping", Value::Null).expect("b").ok);
    let mut c = AdminClient::connect(&sock, Duration::from_secs(10)).expect("c");
    assert_eq!(
        c.read_response().expect("busy").error.expect("error").code,
        Code::Busy
    );
}

/// Clients that connect and never speak, or speak once and go quiet, cannot lock operators
/// out: the silent ones are closed after `request_timeout`, and when the cap is full the
/// connection idle longest makes room.
#[test]
fn silent_and_idle_connections_cannot_lock_operators_out() {
    let (dir, store) = shop(PluginLimits::default());
    let sock = dir.path().join("admin.sock");
    let timeout = Duration::from_millis(400);
    let _server = recostore::admin::AdminServer::start_with(
        &store,
        &sock,
        AdminOptions {
            max_connections: 4,
            request_timeout: timeout,
            ..AdminOptions::default()
        },
    )
    .expect("serve");
    // Four connections that never send a byte fill the cap, but only until the first-request
    // deadline closes them.
    let mut silent: Vec<UnixStream> = (0..4).map(|_| raw(&sock)).collect();
    std::thread::sleep(timeout * 3);
    let mut op = AdminClient::connect(&sock, Duration::from_secs(10)).expect("operator");
    assert!(op.call("ping", Value::Null).expect("ping").ok, "served");
    for s in &mut silent {
        let mut line = String::new();
        let mut b = [0u8; 1];
        while s.read(&mut b).unwrap_or(0) == 1 && b[0] != b'\n' {
            line.push(b[0] as char);
        }
        assert!(line.contains("no request within"), "{line}");
    }
    drop(op);
    // Four clients that ping once and then idle: a fifth still gets in, and the idlest is
    // told why it was closed.
    let mut idle: Vec<AdminClient> = (0..4)
        .map(|_| {
            let mut c = AdminClient::connect(&sock, Duration::from_secs(10)).expect("idle");
            assert!(c.call("ping", Value::Null).expect("ping").ok);
            c
        })
        .collect();
    std::thread::sleep(timeout * 2);
    let mut op = AdminClient::connect(&sock, Duration::from_secs(10)).expect("operator");
    assert!(
        op.call("ping", Value::Null).expect("ping").ok,
        "room was made"
    );
    let first = idle[0].read_response().expect("told");
    let err = first.error.expect("an error");
    assert_eq!(err.code, Code::Busy);
    assert!(err.message.contains("to make room"), "{}", err.message);
}

#[test]
fn the_socket_is_owner_only_and_a_live_one_is_never_stolen() {
    let (dir, store) = shop(PluginLimits::default());
    let sock = dir.path().join("admin.sock");
    let server = recostore::admin::AdminServer::start(&store, &sock).expect("serve");
    let mode = std::fs::metadata(&sock)
        .expect("socket")
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o600);
    let err = recostore::admin::AdminServer::start(&store, &sock)
        .expect_err("a live socket is not stolen");
    assert!(err.to_string().contains("live admin server"), "{err}");
    let mut c = AdminClient::connect(&sock, Duration::from_secs(10)).expect("still the first");
    assert!(c.call("ping", Value::Null).expect("ping").ok);
    server.shutdown().expect("shutdown");
    assert!(!sock.exists(), "shutdown removes the socket file");

    // A stale socket (its server died without cleaning up) is replaced.
    drop(UnixListener::bind(&sock).expect("bind"));
    assert!(sock.exists());
    let _server =
        recostore::admin::AdminServer::start(&store, &sock).expect("stale socket replaced");
    let mut c = AdminClient::connect(&sock, Duration::from_secs(10)).expect("connect");
    assert!(c.call("ping", Value::Null).expect("ping").ok);

    // A regular file in the way is left alone.
    let file = dir.path().join("not-a-socket");
    std::fs::write(&file, "keep me").expect("write");
    assert!(recostore::admin::AdminServer::start(&store, &file).is_err());
    assert_eq!(std::fs::read_to_string(&file).expect("kept"), "keep me");
}
