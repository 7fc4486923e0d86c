//! The simulator is a model of the API server written independently of the
//! engine it tests (docs/ARCHITECTURE.md, "Layout"): its sources name none of
//! kcache's modules, so a bug in the engine's parsing or state cannot hide in
//! the server that checks it.

use std::path::{Path, PathBuf};

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

#[test]
fn no_simulator_source_names_the_engine() {
    let sim = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/sim");
    let mut files = Vec::new();
    rust_files(&sim, &mut files);
    assert!(files.len() >= 10, "found only {} files under {}", files.len(), sim.display());
    let mut uses = Vec::new();
    for file in &files {
        let text = std::fs::read_to_string(file).unwrap();
        for (n, line) in text.lines().enumerate() {
            let code = line.trim_start();
            if code.starts_with("//") {
                continue;
            }
            if code.contains("kcache::") {
                uses.push(format!("{}:{}: {}", file.strip_prefix(&sim).unwrap().display(), n + 1, code));
            }
        }
    }
    assert!(uses.is_empty(), "the simulator names the engine:\n{}", uses.join("\n"));
}
