//! The shape of the source tree, checked: the protocol core imports only
//! itself and pure helpers, no two files import each other (directly or
//! round a longer circle), and no file is too long to read.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

/// What a file under src/proto may name with `crate::`: the core itself and
/// helpers that touch neither sockets, clocks nor files.
const PROTO_MAY_IMPORT: [&str; 3] = ["proto", "id", "token_bucket"];
const MAX_LINES: usize = 600;

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The module path of a file: src/proto/tunnel/mod.rs is ["proto", "tunnel"].
fn module_of(file: &Path) -> Vec<String> {
    let relative = file.strip_prefix(src()).unwrap().with_extension("");
    let mut parts: Vec<String> = relative
        .iter()
        .map(|p| p.to_string_lossy().into_owned())
        .collect();
    if matches!(
        parts.last().map(String::as_str),
        Some("mod" | "lib" | "main")
    ) {
        parts.pop();
    }
    parts
}

/// Code without comments and string literals, so that neither a doc line
/// nor a log message counts as an import.
fn code_only(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for line in text.lines() {
        let mut in_string = false;
        let mut escaped = false;
        let mut chars = line.chars().peekable();
        while let Some(c) = chars.next() {
            if in_string {
                match (escaped, c) {
                    (false, '\\') => escaped = true,
                    (false, '"') => in_string = false,
                    _ => escaped = false,
                }
                continue;
            }
            match c {
                '/' if chars.peek() == Some(&'/') => break,
                '"' => in_string = true,
                _ => out.push(c),
            }
        }
        out.push('\n');
    }
    out
}

/// Expands `a::{b, c::{d, e}}` into every full path it names.
fn expand(tree: &str, prefix: &str, out: &mut Vec<String>) {
    let tree = tree.trim();
    match tree.find('{') {
        None => {
            for item in split_top(tree) {
                let item = item.split(" as ").next().unwrap().trim();
                if !item.is_empty() {
                    out.push(format!("{prefix}{item}"));
                }
            }
        }
        Some(open) => {
            let head = &tree[..open];
            let close = tree.rfind('}').unwrap();
            for item in split_top(&tree[open + 1..close]) {
                expand(item, &format!("{prefix}{head}"), out);
            }
        }
    }
}

/// Splits on commas that are not inside braces.
fn split_top(list: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let (mut depth, mut start) = (0, 0);
    for (i, c) in list.char_indices() {
        match c {
            '{' => depth += 1,
            '}' => depth -= 1,
            ',' if depth == 0 => {
                parts.push(&list[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&list[start..]);
    parts
}

/// Every `crate::`, `super::` and `self::` path a file names, in `use`
/// items and inline, with the line it is on.
fn paths_in(text: &str) -> Vec<(usize, String)> {
    let code = code_only(text);
    let mut out = Vec::new();
    let mut rest = code.as_str();
    let mut offset = 0;
    while let Some(at) = rest.find("use ") {
        let start = offset + at;
        let boundary = start == 0 || {
            let before = code.as_bytes()[start - 1];
            !(before.is_ascii_alphanumeric() || before == b'_')
        };
        let Some(end) = code[start..].find(';') else {
            break;
        };
        if boundary {
            let line = code[..start].lines().count() + 1;
            let mut expanded = Vec::new();
            expand(&code[start + 4..start + end], "", &mut expanded);
            out.extend(expanded.into_iter().map(|p| (line, p)));
        }
        offset = start + 4;
        rest = &code[offset..];
    }
    for (number, line) in code.lines().enumerate() {
        if line.trim_start().starts_with("use ") || line.trim_start().starts_with("pub use ") {
            continue;
        }
        for root in ["crate::", "super::"] {
            let mut from = 0;
            while let Some(at) = line[from..].find(root) {
                let start = from + at;
                let path: String = line[start..]
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == ':')
                    .collect();
                out.push((number + 1, path.trim_end_matches(':').to_string()));
                from = start + root.len();
            }
        }
    }
    out
}

/// The file a path leads to: the deepest module on it that has a file.
fn resolve(
    path: &str,
    module: &[String],
    files: &BTreeMap<Vec<String>, PathBuf>,
) -> Option<PathBuf> {
    let mut segments: Vec<&str> = path.split("::").collect();
    let mut base: Vec<String> = match segments.first().copied() {
        Some("crate") => Vec::new(),
        Some("super") => {
            let mut base = module.to_vec();
            while segments.get(1) == Some(&"super") {
                segments.remove(0);
                base.pop();
            }
            base.pop();
            base
        }
        Some("self") => module.to_vec(),
        _ => return None,
    };
    let mut found = files.get(&base).cloned();
    for segment in &segments[1..] {
        base.push(segment.to_string());
        match files.get(&base) {
            Some(file) => found = Some(file.clone()),
            None => break,
        }
    }
    found
}

struct Tree {
    files: BTreeMap<Vec<String>, PathBuf>,
}

impl Tree {
    fn load() -> Tree {
        let mut all = Vec::new();
        rust_files(&src(), &mut all);
        let mut files = BTreeMap::new();
        for file in all {
            // main.rs and lib.rs are both the crate root; lib.rs is the one
            // others name.
            if file.ends_with("src/main.rs") {
                continue;
            }
            files.insert(module_of(&file), file);
        }
        Tree { files }
    }

    /// File to the files it imports. A child module naming its own parent
    /// (smoltcp's pattern: one type, its `impl` blocks in child files) is
    /// not an import.
    fn imports(&self) -> BTreeMap<PathBuf, BTreeSet<PathBuf>> {
        let mut graph = BTreeMap::new();
        for (module, file) in &self.files {
            let text = fs::read_to_string(file).unwrap();
            let mut targets = BTreeSet::new();
            for (_, path) in paths_in(&text) {
                let Some(target) = resolve(&path, module, &self.files) else {
                    continue;
                };
                let target_module = module_of(&target);
                let ancestor = module.starts_with(&target_module);
                if target != *file && !ancestor {
                    targets.insert(target);
                }
            }
            graph.insert(file.clone(), targets);
        }
        graph
    }
}

fn short(path: &Path) -> String {
    path.strip_prefix(src()).unwrap().display().to_string()
}

#[test]
fn the_core_imports_only_itself_and_pure_helpers() {
    let tree = Tree::load();
    let mut bad = Vec::new();
    let mut listed = Vec::new();
    for (module, file) in &tree.files {
        if module.first().map(String::as_str) != Some("proto") {
            continue;
        }
        let text = fs::read_to_string(file).unwrap();
        let mut roots = BTreeSet::new();
        for (line, path) in paths_in(&text) {
            let Some(rest) = path.strip_prefix("crate::") else {
                continue;
            };
            let root = rest.split("::").next().unwrap().to_string();
            if !PROTO_MAY_IMPORT.contains(&root.as_str()) {
                bad.push(format!("{}:{line}: {path}", short(file)));
            }
            roots.insert(root);
        }
        listed.push(format!("{}: {roots:?}", short(file)));
    }
    println!("crate:: imports under src/proto:\n{}", listed.join("\n"));
    assert!(listed.len() > 10, "found too few files: {listed:?}");
    assert!(
        bad.is_empty(),
        "src/proto may import only {PROTO_MAY_IMPORT:?}:\n{}",
        bad.join("\n")
    );
}

#[test]
fn no_two_files_import_each_other() {
    let graph = Tree::load().imports();
    // Depth-first search; a back edge closes a circle.
    fn visit(
        node: &PathBuf,
        graph: &BTreeMap<PathBuf, BTreeSet<PathBuf>>,
        stack: &mut Vec<PathBuf>,
        done: &mut BTreeSet<PathBuf>,
        circles: &mut Vec<String>,
    ) {
        if done.contains(node) {
            return;
        }
        if let Some(at) = stack.iter().position(|n| n == node) {
            let circle: Vec<String> = stack[at..].iter().map(|p| short(p)).collect();
            circles.push(format!("{} -> {}", circle.join(" -> "), short(node)));
            return;
        }
        stack.push(node.clone());
        for next in graph.get(node).into_iter().flatten() {
            visit(next, graph, stack, done, circles);
        }
        stack.pop();
        done.insert(node.clone());
    }
    let edges: usize = graph.values().map(BTreeSet::len).sum();
    assert!(
        edges > 50,
        "found too few imports ({edges}): the parser is broken"
    );
    let mut circles = Vec::new();
    let mut done = BTreeSet::new();
    for node in graph.keys() {
        visit(node, &graph, &mut Vec::new(), &mut done, &mut circles);
    }
    assert!(
        circles.is_empty(),
        "import circles:\n{}",
        circles.join("\n")
    );
}

#[test]
fn no_source_file_is_over_the_limit() {
    let mut all = Vec::new();
    rust_files(&src(), &mut all);
    let long: Vec<String> = all
        .iter()
        .map(|f| (f, fs::read_to_string(f).unwrap().lines().count()))
        .filter(|(_, n)| *n > MAX_LINES)
        .map(|(f, n)| format!("{}: {n} lines", short(f)))
        .collect();
    assert!(
        long.is_empty(),
        "files over {MAX_LINES} lines:\n{}",
        long.join("\n")
    );
}

#[test]
fn the_checks_see_circles_and_imports() {
    // The parser itself, on text with a known answer.
    let text = "use crate::proto::{wire::{self, Packet}, route::Route as R};\n\
                // use crate::config::Nothing;\n\
                fn f() { crate::status::render(\"crate::app\"); super::x::y(); }\n";
    let paths: Vec<String> = paths_in(text).into_iter().map(|(_, p)| p).collect();
    assert_eq!(
        paths,
        [
            "crate::proto::wire::self",
            "crate::proto::wire::Packet",
            "crate::proto::route::Route",
            "crate::status::render",
            "super::x::y",
        ]
    );
}
