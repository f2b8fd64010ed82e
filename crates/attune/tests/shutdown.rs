//! Graceful shutdown of a real `attune serve` process: it serves recommendations and searches (whose
//! impressions and search events are queued, not yet written) and two slow requests whose bodies are still
//! arriving when it receives SIGTERM. It must stop accepting connections, finish both requests, exit 0 within
//! the deadline, and every queued impression and search event must be in the store after a restart.
//! On SQLite, or on PostgreSQL with `ATTUNE_TEST_BACKEND=postgres`.

#![cfg(unix)]

mod process;

use process::{Served, TestData};
use serde_json::{Value, json};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Child;
use std::time::{Duration, Instant};

/// Recommendation lists and searches served before the signal.
const SERVED: usize = 20;

fn start_server(data: &TestData) -> Served {
    let flags = ["--model-dir", "/nonexistent/attune-model", "--shutdown-timeout-seconds", "10"];
    let schedules_off = ["--train-interval-minutes", "0", "--forecast-interval-minutes", "0"];
    data.serve(&[flags, schedules_off].concat())
}

fn post(http: &reqwest::blocking::Client, server: &Served, key: &str, path: &str, body: &Value) -> Value {
    let response = http.post(format!("{}{path}", server.base)).bearer_auth(key).json(body).send().unwrap();
    let status = response.status();
    let body: Value = response.json().unwrap();
    assert!(status.is_success(), "{path}: {status} {body}");
    body
}

/// Ten mugs and teapots, and orders that buy them in pairs.
fn seed(http: &reqwest::blocking::Client, server: &Served, key: &str) {
    let items: Vec<Value> = (0..10)
        .map(|i| json!({"id": format!("m{i}"), "title": format!("Blue mug {i}"), "price": "4.50", "currency": "GBP"}))
        .chain((0..10).map(
            |i| json!({"id": format!("t{i}"), "title": format!("Teapot {i}"), "price": "20.00", "currency": "GBP"}),
        ))
        .collect();
    post(http, server, key, "/v1/items", &json!({"items": items}));
    let orders: Vec<Value> = (0..30)
        .map(|n| {
            let lines = [format!("m{}", n % 10), format!("t{}", n % 10)]
                .map(|item| json!({"item_id": item, "quantity": 1, "unit_price": "4.50"}));
            json!({"type": "purchase", "event_id": format!("o{n}"), "user_id": format!("u{}", n % 12),
                   "order_id": format!("o{n}"), "currency": "GBP", "lines": lines,
                   "timestamp": "2024-05-01T10:00:00Z"})
        })
        .collect();
    post(http, server, key, "/v1/events/batch", &json!({"events": orders}));
}

/// A request whose body is sent in two halves: the first now, the second by [`SlowRequest::finish`].
struct SlowRequest {
    stream: TcpStream,
    rest: Vec<u8>,
}

impl SlowRequest {
    fn start(server: &Served, key: &str, path: &str, body: &Value) -> Self {
        let body = serde_json::to_vec(body).unwrap();
        let mut stream = TcpStream::connect(&server.address).unwrap();
        let head = format!(
            "POST {path} HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {key}\r\nContent-Type: application/json\r\n\
             Content-Length: {}\r\nConnection: close\r\n\r\n",
            server.address,
            body.len()
        );
        stream.write_all(head.as_bytes()).unwrap();
        let (first, rest) = body.split_at(body.len() / 2);
        stream.write_all(first).unwrap();
        stream.flush().unwrap();
        Self { stream, rest: rest.to_vec() }
    }

    /// Sends the rest of the body and returns the response's status line and body.
    fn finish(mut self) -> (String, Value) {
        self.stream.write_all(&self.rest).unwrap();
        self.stream.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        let mut response = String::new();
        self.stream.read_to_string(&mut response).unwrap();
        let (head, body) = response.split_once("\r\n\r\n").unwrap_or_else(|| panic!("no response: {response:?}"));
        let status = head.lines().next().unwrap_or_default().to_string();
        // The body may be chunked; the JSON document is the part between the braces.
        let json = &body[body.find('{').unwrap_or(0)..=body.rfind('}').unwrap_or(0)];
        (status, serde_json::from_str(json).unwrap_or(Value::Null))
    }
}

/// Waits for the process to exit within `deadline`; its status.
fn wait_for_exit(child: &mut Child, deadline: Duration) -> std::process::ExitStatus {
    let clock = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        assert!(clock.elapsed() < deadline, "the server did not exit within {deadline:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn events_of_type(stats: &Value, event_type: &str) -> u64 {
    let by_type = stats["events_by_type"].as_array().unwrap();
    by_type.iter().find(|t| t["event_type"] == event_type).map_or(0, |t| t["events"].as_u64().unwrap())
}

#[test]
fn sigterm_finishes_requests_in_flight_and_loses_no_queued_event() {
    let data = TestData::new();
    let key = data.create_key("shop");
    let mut server = start_server(&data);
    let http = reqwest::blocking::Client::builder().timeout(Duration::from_secs(60)).build().unwrap();
    seed(&http, &server, &key);

    // Served lists and searches queue an impression or a search event each.
    for n in 0..SERVED {
        let list = post(
            &http,
            &server,
            &key,
            "/v1/recommendations",
            &json!({"scenario": "similar", "item_id": format!("m{}", n % 10), "anonymous_id": format!("visitor-{n}")}),
        );
        assert!(!list["items"].as_array().unwrap().is_empty(), "{list}");
        let found = post(&http, &server, &key, "/v1/search", &json!({"q": "blue mug", "user_id": format!("u{n}")}));
        assert!(found["total"].as_u64() > Some(0), "{found}");
    }
    // Two requests still arriving when the signal comes.
    let slow_list = SlowRequest::start(
        &server,
        &key,
        "/v1/recommendations",
        &json!({"scenario": "similar", "item_id": "t1", "anonymous_id": "late-visitor"}),
    );
    let slow_search = SlowRequest::start(&server, &key, "/v1/search", &json!({"q": "teapot", "user_id": "late"}));
    std::thread::sleep(Duration::from_millis(100));

    let signalled = Instant::now();
    // SAFETY: kill only sends a signal to the child's process id.
    assert_eq!(unsafe { libc::kill(server.child.id() as libc::pid_t, libc::SIGTERM) }, 0);
    std::thread::sleep(Duration::from_millis(300));
    let refused = TcpStream::connect(&server.address)
        .map(|mut stream| {
            let _ = stream.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
            let mut answer = String::new();
            stream.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            let _ = stream.read_to_string(&mut answer);
            answer.is_empty()
        })
        .unwrap_or(true);
    assert!(refused, "a new connection was served after SIGTERM");
    let (status, list) = slow_list.finish();
    assert!(status.contains(" 200 "), "{status} {list}");
    assert!(!list["items"].as_array().unwrap().is_empty(), "{list}");
    let (status, found) = slow_search.finish();
    assert!(status.contains(" 200 "), "{status} {found}");

    let exit = wait_for_exit(&mut server.child, Duration::from_secs(15));
    assert!(exit.success(), "exit status {exit}");
    assert!(signalled.elapsed() < Duration::from_secs(15), "{:?}", signalled.elapsed());
    drop(server);

    let server = start_server(&data);
    let stats =
        http.get(format!("{}/v1/stats", server.base)).bearer_auth(&key).send().unwrap().json::<Value>().unwrap();
    assert_eq!(events_of_type(&stats, "impression"), SERVED as u64 + 1, "{stats}");
    assert_eq!(events_of_type(&stats, "search"), SERVED as u64 + 1, "{stats}");
}
