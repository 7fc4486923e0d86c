//! The layout's import rules (docs/ARCHITECTURE.md, "Layout"), checked on the
//! sources: no module imports backwards along the data path.
//!
//! A reference counts when code names `crate::<module>` (a `use` line or a
//! path in an expression); doc comments and `//` comments do not count, since
//! a doc may link anywhere.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// Modules each top-level module must never import.
const NEVER: &[(&str, &[&str])] = &[
    ("wire", &["store", "fifo", "reflector", "informer", "controller", "client", "queue", "testing"]),
    ("arena", &["store", "fifo", "reflector", "informer", "controller", "client", "queue", "wire", "testing"]),
    ("object", &["store", "fifo", "reflector", "informer", "controller", "client", "queue", "testing"]),
    ("store", &["fifo", "reflector", "informer", "controller", "client", "queue", "wire", "testing"]),
    ("fifo", &["reflector", "informer", "controller", "client", "queue", "wire", "testing"]),
    ("reflector", &["store", "fifo", "informer", "controller", "client", "queue", "arena", "testing"]),
    ("informer", &["controller", "client", "queue", "testing"]),
    ("controller", &["reflector", "wire", "client", "testing"]),
    ("queue", &["wire", "arena", "object", "store", "fifo", "reflector", "informer", "controller", "client", "selector", "testing"]),
    ("client", &["fifo", "wire", "testing"]),
    ("metrics", &["controller", "client", "testing"]),
    ("typed", &["fifo", "reflector", "wire", "controller", "client", "queue", "testing"]),
    ("lease", &["wire", "arena", "object", "store", "fifo", "reflector", "informer", "controller", "client", "queue", "typed", "shard", "testing"]),
    ("shard", &["wire", "arena", "store", "fifo", "controller", "client", "queue", "typed", "testing"]),
    ("selector", &["fifo", "reflector", "informer", "controller", "client", "queue", "wire", "testing"]),
];

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The top-level module a source file belongs to (`store/shard.rs` -> `store`).
fn top_module(src: &Path, file: &Path) -> String {
    let rel = file.strip_prefix(src).unwrap();
    let first = rel.components().next().unwrap().as_os_str().to_string_lossy().into_owned();
    first.trim_end_matches(".rs").to_owned()
}

/// The modules named as `crate::<name>` in the code of `text`, tests excluded
/// (a unit test may build what it needs from anywhere).
fn imports(text: &str) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    for line in text.lines() {
        let code = line.trim_start();
        if code.starts_with("#[cfg(test)]") {
            break;
        }
        if code.starts_with("//") {
            continue;
        }
        let code = code.split("//").next().unwrap_or("");
        let mut rest = code;
        while let Some(i) = rest.find("crate::") {
            rest = &rest[i + "crate::".len()..];
            let name: String = rest.chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect();
            if name.chars().next().is_some_and(|c| c.is_ascii_lowercase()) {
                found.insert(name);
            }
        }
    }
    found
}

#[test]
fn no_module_imports_backwards_along_the_data_path() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    assert!(files.len() > 20, "found only {} source files under {}", files.len(), src.display());
    let mut violations = Vec::new();
    for file in &files {
        let module = top_module(&src, file);
        let Some((_, never)) = NEVER.iter().find(|(m, _)| *m == module) else { continue };
        let text = std::fs::read_to_string(file).unwrap();
        for name in imports(&text) {
            if never.contains(&name.as_str()) {
                violations.push(format!("{} imports crate::{name}", file.strip_prefix(&src).unwrap().display()));
            }
        }
    }
    assert!(violations.is_empty(), "backwards imports:\n{}", violations.join("\n"));
}

#[test]
fn the_import_scanner_sees_code_and_skips_comments_and_tests() {
    let text = "use crate::store::Store;\n/// see [`crate::fifo`]\nlet x = crate::wire::decode(); // crate::queue\n#[cfg(test)]\nuse crate::informer;";
    let found: Vec<String> = imports(text).into_iter().collect();
    assert_eq!(found, ["store", "wire"]);
}
