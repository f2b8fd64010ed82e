//! The one harness of the binary's integration tests: a real `attune serve` process on a free loopback port
//! over a data directory, and the `attune keys create` that gives it a key.

#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

pub const BINARY: &str = env!("CARGO_BIN_EXE_attune");

/// A running `attune serve`; killed when dropped.
pub struct Served {
    pub child: Child,
    /// `http://127.0.0.1:<port>`.
    pub base: String,
    /// `127.0.0.1:<port>`.
    pub address: String,
}

impl Served {
    /// Starts `attune serve` on `data_dir` with `extra` flags and waits (up to two minutes) for the address
    /// line it prints first.
    pub fn start(data_dir: &Path, extra: &[&str]) -> Self {
        let mut child = Command::new(BINARY)
            .args(["serve", "--data-dir", data_dir.to_str().unwrap(), "--listen", "127.0.0.1:0", "--log", "warn"])
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start attune serve");
        let stdout = child.stdout.take().unwrap();
        let (sender, receiver) = mpsc::channel();
        std::thread::spawn(move || {
            let mut lines = BufReader::new(stdout).lines();
            let _ = sender.send(lines.next());
            // Keep draining so the server never blocks on a full pipe.
            for _ in lines {}
        });
        let first_line = match receiver.recv_timeout(Duration::from_secs(120)) {
            Ok(Some(Ok(line))) => line,
            Ok(other) => panic!("attune serve exited before printing its address: {other:?}"),
            Err(_) => panic!("attune serve printed no address within 120 s"),
        };
        let base = first_line
            .trim()
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("unexpected first line: {first_line:?}"))
            .to_string();
        let address = base.trim_start_matches("http://").to_string();
        Self { child, base, address }
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A new secret key of `tenant` (created with it when missing), from `attune keys create`.
pub fn create_key(data_dir: &Path, tenant: &str) -> String {
    let output = Command::new(BINARY)
        .args(["keys", "create", "--data-dir", data_dir.to_str().unwrap(), "--tenant", tenant, "--kind", "secret"])
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8(output.stdout).unwrap().trim().to_string()
}
