//! The README's `curl` examples, run as written against a real `attune serve` process: every command line of the
//! README's `sh` code blocks that starts with `curl` (continuation lines joined) is read from README.md itself, its
//! `localhost:7878` pointed at the test server, and run with `sh -c` from the repository root with `$KEY` set to a
//! secret key of tenant `acme` (as the README's `keys create` line makes it). Each must exit 0 with a 2xx status:
//! a `.curlrc` in `CURL_HOME` adds `--fail` and writes the status after the body.

#![cfg(unix)]

mod process;

use process::{Served, create_key};
use std::path::{Path, PathBuf};
use std::process::Command;

fn repository_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().unwrap()
}

/// The command lines of the `sh` code blocks of `markdown`, continuation lines (`\` at the end) joined.
fn shell_commands(markdown: &str) -> Vec<String> {
    let mut commands = Vec::new();
    let mut in_shell = false;
    let mut pending = String::new();
    for line in markdown.lines() {
        let fence = line.trim_start();
        if let Some(language) = fence.strip_prefix("```") {
            in_shell = !in_shell && language.trim() == "sh";
            continue;
        }
        if !in_shell {
            continue;
        }
        match line.strip_suffix('\\') {
            Some(start) => pending.push_str(start),
            None => {
                pending.push_str(line);
                commands.push(std::mem::take(&mut pending).trim().to_string());
            }
        }
    }
    commands.into_iter().filter(|c| !c.is_empty()).collect()
}

/// The `curl` command lines of the README.
fn curl_examples() -> Vec<String> {
    let readme = std::fs::read_to_string(repository_root().join("README.md")).unwrap();
    shell_commands(&readme).into_iter().filter(|c| c.starts_with("curl ")).collect()
}

/// A `CURL_HOME` whose `.curlrc` makes curl fail on an HTTP error and print the status last.
fn curl_home() -> tempfile::TempDir {
    let home = tempfile::tempdir().unwrap();
    std::fs::write(home.path().join(".curlrc"), "fail-with-body\nwrite-out = \"\\nHTTP %{http_code}\\n\"\n").unwrap();
    home
}

#[test]
fn the_shell_blocks_are_read_with_continuation_lines_joined() {
    let markdown = "text\n```sh\ncurl -s a \\\n  -d b   # note\nKEY=1\n```\n```json\ncurl no\n```\n";
    assert_eq!(shell_commands(markdown), ["curl -s a   -d b   # note", "KEY=1"]);
}

#[test]
fn every_curl_example_of_the_readme_works_as_written() {
    let examples = curl_examples();
    let endpoints = ["/v1/items/", "/v1/events/batch", "/v1/recommendations", "/v1/search", "/timeline"];
    for endpoint in endpoints {
        assert!(examples.iter().any(|e| e.contains(endpoint)), "no README example calls {endpoint}: {examples:#?}");
    }
    let directory = tempfile::tempdir().unwrap();
    let key = create_key(directory.path(), "acme");
    let flags = ["--model-dir", "/nonexistent/attune-model", "--train-interval-minutes", "0"];
    let server = Served::start(directory.path(), &[&flags[..], &["--forecast-interval-minutes", "0"]].concat());
    let home = curl_home();
    for example in &examples {
        assert!(example.contains("localhost:7878"), "an example that does not call the server: {example}");
        let command = example.replace("localhost:7878", &server.address);
        let output = Command::new("sh")
            .args(["-c", &command])
            .current_dir(repository_root())
            .env("KEY", &key)
            .env("CURL_HOME", home.path())
            .output()
            .expect("run sh");
        let stdout = String::from_utf8_lossy(&output.stdout);
        let stderr = String::from_utf8_lossy(&output.stderr);
        let status = stdout.lines().last().unwrap_or_default();
        assert!(output.status.success(), "{example}\nexit {:?}: {stdout}{stderr}", output.status.code());
        assert!(status.starts_with("HTTP 2"), "{example}\n{stdout}{stderr}");
    }
    // The recommendations example returns items with what a widget shows.
    let recommendations = examples.iter().find(|e| e.contains("/v1/recommendations")).unwrap();
    let command = recommendations.replace("localhost:7878", &server.address);
    let output = Command::new("sh").args(["-c", &command]).current_dir(repository_root()).env("KEY", &key).output();
    let body: serde_json::Value = serde_json::from_slice(&output.unwrap().stdout).unwrap();
    let items = body["items"].as_array().unwrap();
    assert!(!items.is_empty(), "{body}");
    assert!(items.iter().all(|i| i["price_text"].is_string() && i["link"].is_string()), "{body}");
}
