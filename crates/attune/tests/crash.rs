//! Durability: a real `attune serve` process receives event batches and single events from several
//! clients, is killed with SIGKILL mid-stream, and restarted on the same data directory. Every event it
//! acknowledged must then be stored exactly once, and retrying everything must add no duplicates.
//! On SQLite, or on PostgreSQL with `ATTUNE_TEST_BACKEND=postgres`.

mod process;

use attune_core::TenantId;
use process::TestData;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

fn event(id: &str, n: usize) -> serde_json::Value {
    serde_json::json!({"type": "view", "event_id": id, "user_id": format!("u{}", n % 97), "item_id": format!("i{}", n % 1009),
                       "dwell_ms": n % 5000, "session_id": format!("s{}", n / 10), "timestamp": "2024-05-01T10:00:00Z"})
}

/// All batches a client will send: (event ids, body).
fn client_batches(client: usize, batches: usize, size: usize) -> Vec<(Vec<String>, serde_json::Value)> {
    (0..batches)
        .map(|b| {
            let ids: Vec<String> = (0..size).map(|i| format!("c{client}-b{b}-e{i}")).collect();
            let events: Vec<_> = ids.iter().enumerate().map(|(i, id)| event(id, b * size + i)).collect();
            (ids, serde_json::json!({"events": events}))
        })
        .collect()
}

#[test]
fn acknowledged_events_survive_sigkill_exactly_once() {
    let data = TestData::new();
    let key = data.create_key("crash");
    let mut server = data.serve(&[]);
    let acknowledged: Arc<Mutex<Vec<String>>> = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let mut senders = Vec::new();
    for client in 0..3 {
        let (base, key, acknowledged, stop) = (server.base.clone(), key.clone(), acknowledged.clone(), stop.clone());
        senders.push(std::thread::spawn(move || {
            let http = reqwest::blocking::Client::builder().timeout(Duration::from_secs(10)).build().unwrap();
            if client == 2 {
                // One client sends single events.
                for n in 0.. {
                    if stop.load(Ordering::Relaxed) {
                        break;
                    }
                    let id = format!("single-{n}");
                    match http.post(format!("{base}/v1/events")).bearer_auth(&key).json(&event(&id, n)).send() {
                        Ok(response) if response.status().is_success() => acknowledged.lock().unwrap().push(id),
                        Ok(response) => panic!("single event refused: {}", response.status()),
                        Err(_) => break,
                    }
                }
                return;
            }
            for (ids, body) in client_batches(client, 10_000, 500) {
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                match http.post(format!("{base}/v1/events/batch")).bearer_auth(&key).json(&body).send() {
                    Ok(response) if response.status().is_success() => acknowledged.lock().unwrap().extend(ids),
                    Ok(response) => panic!("batch refused: {}", response.status()),
                    Err(_) => break,
                }
            }
        }));
    }
    // Let acknowledgements accumulate, then kill the server while requests are in flight.
    let started = Instant::now();
    while acknowledged.lock().unwrap().len() < 20_000 && started.elapsed() < Duration::from_secs(60) {
        std::thread::sleep(Duration::from_millis(20));
    }
    server.child.kill().expect("SIGKILL the server");
    server.child.wait().unwrap();
    stop.store(true, Ordering::Relaxed);
    for sender in senders {
        sender.join().expect("client thread");
    }
    let acknowledged = acknowledged.lock().unwrap().clone();
    assert!(acknowledged.len() >= 1_000, "too few acknowledgements before the kill: {}", acknowledged.len());

    // Restart on the same data and check through the API that it serves.
    let server = data.serve(&[]);
    let http = reqwest::blocking::Client::new();
    let health: serde_json::Value = http.get(format!("{}/healthz", server.base)).send().unwrap().json().unwrap();
    assert_eq!(health["status"], "ok");

    let count_stored = || -> HashMap<String, usize> {
        let store = data.open();
        let tenant = TenantId::parse_slug("crash").unwrap();
        let mut counts = HashMap::new();
        let mut after = 0;
        loop {
            let chunk = store.events_after(&tenant, after, 10_000).unwrap();
            let Some(last) = chunk.last() else { break };
            after = last.seq;
            for stored in chunk {
                *counts.entry(stored.event.id.to_string()).or_insert(0) += 1;
            }
        }
        counts
    };
    let stored = count_stored();
    let missing: Vec<&String> = acknowledged.iter().filter(|id| !stored.contains_key(*id)).collect();
    assert!(
        missing.is_empty(),
        "{} acknowledged events lost, e.g. {:?}",
        missing.len(),
        &missing[..missing.len().min(5)]
    );
    assert!(stored.values().all(|&n| n == 1), "an event is stored twice");
    eprintln!("acknowledged {} events before SIGKILL; {} stored after restart", acknowledged.len(), stored.len());

    // Retrying everything (as a client that never saw its acknowledgements would) adds nothing twice.
    let retry: Vec<_> = acknowledged.iter().take(2_000).enumerate().map(|(n, id)| event(id, n)).collect();
    let response: serde_json::Value = http
        .post(format!("{}/v1/events/batch", server.base))
        .bearer_auth(&key)
        .json(&serde_json::json!({"events": retry}))
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(response["accepted"], 0, "{response}");
    assert_eq!(response["duplicates"], 2_000);
    let after_retry = count_stored();
    assert_eq!(after_retry.len(), stored.len());
    let stats: serde_json::Value =
        http.get(format!("{}/v1/stats", server.base)).bearer_auth(&key).send().unwrap().json().unwrap();
    assert_eq!(stats["events"], stored.len() as u64, "stats agree with the event log");
}
