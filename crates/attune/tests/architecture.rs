//! The architecture's rules, checked on the code itself (see ARCHITECTURE.md):
//! * the engine and the domain crates depend on no HTTP crate (axum, hyper, tower, utoipa, maud), directly or
//!   through anything they depend on with the features they ask for (read from `cargo metadata`);
//! * no crate but `attune-store` depends on a SQL driver;
//! * the files of `attune-server` and `attune-engine` import each other without a loop: every `crate::` and
//!   `super::` path of a file points at the file of the module it names, and the graph of those edges has no
//!   cycle.

use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};

const HTTP_CRATES: [&str; 6] = ["axum", "hyper", "tower", "tower-http", "utoipa", "maud"];
const SQL_DRIVERS: [&str; 8] =
    ["rusqlite", "libsqlite3-sys", "postgres", "tokio-postgres", "sqlx", "diesel", "mysql", "mysql_async"];
const WITHOUT_HTTP: [&str; 7] =
    ["attune-engine", "attune-core", "attune-store", "attune-recs", "attune-search", "attune-insights", "attune-text"];

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().unwrap()
}

/// The dependency graph for this machine's platform (the packages a build here uses, all downloaded).
fn metadata() -> Value {
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".to_string());
    let version = std::process::Command::new(rustc).arg("-vV").output().expect("run rustc -vV");
    let version = String::from_utf8(version.stdout).unwrap();
    let host = version.lines().find_map(|line| line.strip_prefix("host: ")).expect("rustc names its host");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_string());
    let output = std::process::Command::new(cargo)
        .args(["metadata", "--format-version", "1", "--locked", "--offline", "--filter-platform", host])
        .current_dir(workspace_root())
        .output()
        .expect("run cargo metadata");
    assert!(output.status.success(), "cargo metadata failed: {}", String::from_utf8_lossy(&output.stderr));
    serde_json::from_slice(&output.stdout).unwrap()
}

/// The packages of the dependency graph, by id, with their resolved dependencies by name.
struct Graph<'a> {
    packages: HashMap<&'a str, &'a Value>,
    /// Package id → (dependency name as the package calls it → package id).
    resolved: HashMap<&'a str, HashMap<String, &'a str>>,
}

impl<'a> Graph<'a> {
    fn new(metadata: &'a Value) -> Self {
        let packages =
            metadata["packages"].as_array().unwrap().iter().map(|p| (p["id"].as_str().unwrap(), p)).collect();
        let resolved = metadata["resolve"]["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|node| {
                let deps = node["deps"].as_array().unwrap().iter();
                let by_name = deps.map(|d| (d["name"].as_str().unwrap().to_string(), d["pkg"].as_str().unwrap()));
                (node["id"].as_str().unwrap(), by_name.collect())
            })
            .collect();
        Self { packages, resolved }
    }

    fn id_of(&self, name: &str) -> &'a str {
        self.packages.iter().find(|(_, p)| p["name"] == name).map(|(id, _)| *id).unwrap()
    }

    /// Every package a build of `root` compiles, following normal dependencies that are either required or
    /// switched on by the features asked for (not dev-dependencies, not features only other packages ask for).
    fn closure(&self, root: &'a str) -> BTreeSet<String> {
        let mut features: HashMap<&str, BTreeSet<String>> = HashMap::new();
        let mut queue = vec![(root, BTreeSet::from(["default".to_string()]))];
        while let Some((id, asked)) = queue.pop() {
            let first_visit = !features.contains_key(id);
            let known = features.entry(id).or_default();
            let before = known.len();
            known.extend(asked);
            if !first_visit && before == known.len() {
                continue;
            }
            let package = self.packages[id];
            let active = expand_features(package, known);
            for dependency in package["dependencies"].as_array().unwrap() {
                if !dependency["kind"].is_null() {
                    continue;
                }
                let name = dependency["rename"].as_str().or(dependency["name"].as_str()).unwrap();
                let enabled = !dependency["optional"].as_bool().unwrap()
                    || active.contains(&format!("dep:{name}"))
                    || active.contains(name);
                let Some(target) = self.resolved[id].get(&name.replace('-', "_")).copied() else { continue };
                if enabled {
                    let mut asked: BTreeSet<String> = dependency["features"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .map(|f| f.as_str().unwrap().to_string())
                        .collect();
                    asked.extend(active.iter().filter_map(|f| f.strip_prefix(&format!("{name}/"))).map(String::from));
                    if dependency["uses_default_features"].as_bool().unwrap() {
                        asked.insert("default".to_string());
                    }
                    queue.push((target, asked));
                }
            }
        }
        features.keys().map(|id| self.packages[id]["name"].as_str().unwrap().to_string()).collect()
    }
}

/// The features and optional dependencies (`dep:name`, `name/feature`) that `asked` switches on in `package`.
fn expand_features(package: &Value, asked: &BTreeSet<String>) -> BTreeSet<String> {
    let table = package["features"].as_object().unwrap();
    let mut active = BTreeSet::new();
    let mut queue: Vec<String> = asked.iter().cloned().collect();
    while let Some(feature) = queue.pop() {
        if !active.insert(feature.clone()) {
            continue;
        }
        if let Some(members) = table.get(&feature) {
            queue.extend(members.as_array().unwrap().iter().map(|m| m.as_str().unwrap().replace("?/", "/")));
        }
        if let Some((dependency, _)) = feature.split_once('/') {
            queue.push(format!("dep:{dependency}"));
        }
    }
    active
}

#[test]
fn the_engine_and_the_domain_crates_depend_on_no_http_crate() {
    let metadata = metadata();
    let graph = Graph::new(&metadata);
    for name in WITHOUT_HTTP {
        let compiled = graph.closure(graph.id_of(name));
        let http: Vec<&String> = compiled.iter().filter(|c| HTTP_CRATES.contains(&c.as_str())).collect();
        assert!(http.is_empty(), "{name} depends on {http:?}");
    }
    // The check can fail: the server depends on all of them.
    let server = graph.closure(graph.id_of("attune-server"));
    assert!(HTTP_CRATES.iter().all(|http| server.contains(*http)), "{server:?}");
}

#[test]
fn only_the_store_depends_on_a_sql_driver() {
    let metadata = metadata();
    let members: BTreeSet<&str> =
        metadata["workspace_members"].as_array().unwrap().iter().map(|m| m.as_str().unwrap()).collect();
    let mut drivers: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for package in
        metadata["packages"].as_array().unwrap().iter().filter(|p| members.contains(p["id"].as_str().unwrap()))
    {
        for dependency in package["dependencies"].as_array().unwrap() {
            let name = dependency["name"].as_str().unwrap();
            if SQL_DRIVERS.contains(&name) {
                drivers.entry(package["name"].as_str().unwrap()).or_default().push(name);
            }
        }
    }
    assert_eq!(drivers.keys().copied().collect::<Vec<_>>(), vec!["attune-store"], "{drivers:?}");
}

/// One source file and the module path it defines.
struct SourceFile {
    path: PathBuf,
    module: Vec<String>,
}

fn source_files(source: &Path) -> Vec<SourceFile> {
    let mut files = Vec::new();
    let mut pending = vec![source.to_path_buf()];
    while let Some(directory) = pending.pop() {
        for entry in std::fs::read_dir(&directory).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                pending.push(path);
                continue;
            }
            if path.extension().is_none_or(|e| e != "rs") {
                continue;
            }
            let relative = path.strip_prefix(source).unwrap().with_extension("");
            let mut module: Vec<String> = relative.iter().map(|p| p.to_string_lossy().to_string()).collect();
            if matches!(module.last().map(String::as_str), Some("lib" | "mod" | "main")) {
                module.pop();
            }
            files.push(SourceFile { path, module });
        }
    }
    files
}

/// The code of a file without comments, string and character literals (each replaced by a space).
fn code_only(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let chars: Vec<char> = text.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        match (chars[i], chars.get(i + 1).copied()) {
            ('/', Some('/')) => {
                while i < chars.len() && chars[i] != '\n' {
                    i += 1;
                }
            }
            ('/', Some('*')) => {
                i += 2;
                while i + 1 < chars.len() && !(chars[i] == '*' && chars[i + 1] == '/') {
                    i += 1;
                }
                i += 2;
            }
            ('"', _) => {
                i += 1;
                while i < chars.len() && chars[i] != '"' {
                    i += if chars[i] == '\\' { 2 } else { 1 };
                }
                i += 1;
                out.push(' ');
            }
            ('\'', _) if chars.get(i + 2) == Some(&'\'') || (chars.get(i + 1) == Some(&'\\')) => {
                i += if chars.get(i + 1) == Some(&'\\') { 4 } else { 3 };
                out.push(' ');
            }
            (c, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    out
}

/// The module paths a file's code names through `crate::` and `super::`, made absolute. Inline modules
/// (`mod tests { ... }`) shift what `super` means inside them.
fn referenced_paths(code: &str, module: &[String]) -> Vec<Vec<String>> {
    let tokens = tokenize(code);
    let mut paths = Vec::new();
    // The module path at each brace depth: inline `mod name {` opens a module.
    let mut scopes: Vec<(usize, Vec<String>)> = vec![(0, module.to_vec())];
    let mut depth = 0;
    let mut i = 0;
    while i < tokens.len() {
        let current = scopes.last().unwrap().1.clone();
        match tokens[i].as_str() {
            "{" => depth += 1,
            "}" => {
                depth -= 1;
                if scopes.len() > 1 && scopes.last().unwrap().0 == depth {
                    scopes.pop();
                }
            }
            "mod" if tokens.get(i + 2).is_some_and(|t| t == "{") => {
                let mut inner = current.clone();
                inner.push(tokens[i + 1].clone());
                scopes.push((depth, inner));
            }
            "crate" | "super" if tokens.get(i + 1).is_some_and(|t| t == "::") => {
                let (base, next) = path_base(&tokens, i, &current);
                i = collect_paths(&tokens, next, base, &mut paths);
                continue;
            }
            _ => {}
        }
        i += 1;
    }
    paths
}

/// The absolute module path a `crate::` or `super::super::` prefix starting at `i` names, and the index after
/// its last `::`.
fn path_base(tokens: &[String], mut i: usize, current: &[String]) -> (Vec<String>, usize) {
    let mut base = if tokens[i] == "crate" { Vec::new() } else { current.to_vec() };
    if tokens[i] == "crate" {
        i += 2;
    }
    while tokens.get(i).is_some_and(|t| t == "super") && tokens.get(i + 1).is_some_and(|t| t == "::") {
        base.pop();
        i += 2;
    }
    (base, i)
}

/// Reads `a::b::{c, d::e}` from `i` below `base` into `out`; returns the index after it.
fn collect_paths(tokens: &[String], mut i: usize, mut base: Vec<String>, out: &mut Vec<Vec<String>>) -> usize {
    loop {
        match tokens.get(i).map(String::as_str) {
            Some("{") => {
                i += 1;
                while tokens.get(i).is_some_and(|t| t != "}") {
                    i = collect_paths(tokens, i, base.clone(), out);
                    if tokens.get(i).is_some_and(|t| t == ",") {
                        i += 1;
                    }
                }
                return i + 1;
            }
            Some(segment) if segment.chars().all(|c| c.is_alphanumeric() || c == '_') && segment != "self" => {
                base.push(segment.to_string());
                i += 1;
                if tokens.get(i).is_some_and(|t| t == "::") {
                    i += 1;
                    continue;
                }
                out.push(base);
                return i;
            }
            _ => {
                out.push(base);
                return i + usize::from(tokens.get(i).is_some_and(|t| t == "self" || t == "*"));
            }
        }
    }
}

fn tokenize(code: &str) -> Vec<String> {
    let mut tokens = Vec::new();
    let mut chars = code.chars().peekable();
    while let Some(c) = chars.next() {
        if c.is_alphanumeric() || c == '_' {
            let mut word = c.to_string();
            while let Some(&next) = chars.peek().filter(|n| n.is_alphanumeric() || **n == '_') {
                word.push(next);
                chars.next();
            }
            tokens.push(word);
        } else if c == ':' && chars.peek() == Some(&':') {
            chars.next();
            tokens.push("::".to_string());
        } else if !c.is_whitespace() {
            tokens.push(c.to_string());
        }
    }
    tokens
}

/// The file-level import graph of a crate: file → the files it names.
fn import_graph(source: &Path) -> BTreeMap<String, BTreeSet<String>> {
    let files = source_files(source);
    let modules: HashMap<Vec<String>, String> =
        files.iter().map(|f| (f.module.clone(), f.path.strip_prefix(source).unwrap().display().to_string())).collect();
    let mut graph = BTreeMap::new();
    for file in &files {
        let name = modules[&file.module].clone();
        let code = code_only(&std::fs::read_to_string(&file.path).unwrap());
        let mut edges = BTreeSet::new();
        for mut path in referenced_paths(&code, &file.module) {
            // The longest prefix of the path that is a file's module (the crate root at the least).
            while !modules.contains_key(&path) {
                path.pop();
            }
            let target = modules[&path].clone();
            if target != name {
                edges.insert(target);
            }
        }
        graph.insert(name, edges);
    }
    graph
}

/// The cycles of a graph: its strongly connected components with more than one file.
fn cycles(graph: &BTreeMap<String, BTreeSet<String>>) -> Vec<Vec<String>> {
    let reaches = |from: &str| {
        let mut seen = BTreeSet::new();
        let mut pending = vec![from.to_string()];
        while let Some(file) = pending.pop() {
            for next in &graph[&file] {
                if seen.insert(next.clone()) {
                    pending.push(next.clone());
                }
            }
        }
        seen
    };
    let reachable: BTreeMap<&String, BTreeSet<String>> = graph.keys().map(|f| (f, reaches(f))).collect();
    let mut found: Vec<Vec<String>> = Vec::new();
    for file in graph.keys() {
        let mut component: Vec<String> = graph
            .keys()
            .filter(|other| reachable[file].contains(*other) && reachable[*other].contains(file))
            .cloned()
            .collect();
        component.sort();
        if component.len() > 1 && !found.contains(&component) {
            found.push(component);
        }
    }
    found
}

#[test]
fn the_files_of_the_server_and_the_engine_import_each_other_without_a_loop() {
    for name in ["attune-server", "attune-engine"] {
        let graph = import_graph(&workspace_root().join("crates").join(name).join("src"));
        assert!(graph.len() > 10, "{name}: {} files read", graph.len());
        assert!(graph.values().any(|edges| !edges.is_empty()), "{name}: no imports found");
        assert_eq!(cycles(&graph), Vec::<Vec<String>>::new(), "{name} has import loops");
    }
}

#[test]
fn the_loop_check_finds_a_loop() {
    let directory = tempfile::tempdir().unwrap();
    let source = directory.path();
    std::fs::create_dir(source.join("pages")).unwrap();
    std::fs::write(source.join("lib.rs"), "mod pages;\nmod state;\n").unwrap();
    std::fs::write(source.join("state.rs"), "use crate::pages::context::Session;\n").unwrap();
    std::fs::write(source.join("pages/mod.rs"), "mod context;\n// use crate::state::AppState;\n").unwrap();
    std::fs::write(
        source.join("pages/context.rs"),
        "use super::super::state::{self, AppState};\n#[cfg(test)]\nmod tests { use super::Session; }\n",
    )
    .unwrap();
    let graph = import_graph(source);
    assert_eq!(graph["pages/mod.rs"], BTreeSet::new(), "comments and `mod` lines are not imports");
    assert_eq!(graph["pages/context.rs"], BTreeSet::from(["state.rs".to_string()]), "a test module's `super`");
    assert_eq!(cycles(&graph), vec![vec!["pages/context.rs".to_string(), "state.rs".to_string()]]);
}
