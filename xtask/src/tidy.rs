//! Checks of the repository itself, run as tests (`cargo test -p xtask`):
//! what a reviewer would otherwise have to notice by hand.
//!
//! - ARCHITECTURE.md names, in backticks, only paths and Rust items that
//!   exist, so the map cannot drift from the territory unnoticed.
//! - `oponn-web`'s front ends (`pages/`, `api/`, `auth/`) import neither
//!   each other nor the layer above them.

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};

/// The repository's root: the parent of this crate's directory.
fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default()
}

/// Every file and directory of the repository, as `/`-separated paths
/// relative to the root, skipping build output and git's own directory.
fn tree(root: &Path) -> Vec<String> {
    let mut found = Vec::new();
    let mut pending = vec![root.to_path_buf()];
    while let Some(dir) = pending.pop() {
        let Ok(entries) = fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            let name = entry.file_name().to_string_lossy().into_owned();
            if name == ".git" || name == "target" {
                continue;
            }
            let relative = path
                .strip_prefix(root)
                .unwrap_or(&path)
                .to_string_lossy()
                .replace('\\', "/");
            if path.is_dir() {
                found.push(format!("{relative}/"));
                pending.push(path);
            } else {
                found.push(relative);
            }
        }
    }
    found
}

/// The text between backticks in `markdown`, outside fenced blocks.
fn code_spans(markdown: &str) -> Vec<String> {
    let mut spans = Vec::new();
    let mut fenced = false;
    for line in markdown.lines() {
        if line.trim_start().starts_with("```") {
            fenced = !fenced;
            continue;
        }
        if fenced {
            continue;
        }
        let mut parts = line.split('`');
        // Odd-numbered parts lie between backticks.
        parts.next();
        while let Some(span) = parts.next() {
            spans.push(span.to_owned());
            parts.next();
        }
    }
    spans
}

/// Names the map uses that other crates and protocols define: poem's
/// `Csrf`, serde's `Serialize`, the KMS operations, HTTP headers.
const EXTERNAL: &[&str] = &["Csrf", "Serialize", "Encrypt", "Decrypt", "Origin", "Host"];

/// What a code span names, when it names something checkable.
#[derive(Debug, PartialEq, Eq)]
enum Named {
    /// A file or directory (each alternative of a `{a,b}` group).
    Path(Vec<String>),
    /// A Rust item, as the identifiers of its path (`A::b` is `A`, `b`).
    Item(Vec<String>),
}

/// Reads a code span: a path when it has a `/` or a source file's
/// extension (and is not a route or a URL), an item when it is a Rust path
/// that is plainly one (a type, `a::b`, or `f()`); `None` for the rest
/// (commands, SQL, settings, literals).
fn named(span: &str) -> Option<Named> {
    let span = span.trim();
    if span.is_empty() || span.contains(' ') || span.starts_with('/') || span.contains("://") {
        return None;
    }
    let extension = [".rs", ".md", ".toml", ".sql", ".html", ".sh"]
        .iter()
        .any(|extension| span.ends_with(extension));
    if span.contains('/') || extension {
        let media_type = ["application/", "text/", "image/"]
            .iter()
            .any(|prefix| span.starts_with(prefix));
        if media_type || span.contains(['*', '<', '?', '=']) {
            return None;
        }
        return Some(Named::Path(alternatives(span)));
    }
    // `App::build(config)`, `f()`, `f(..)`, `oponn_core::recording::decide_batch`;
    // not `wal_checkpoint(TRUNCATE)`, SQL with an argument in capitals.
    let (path, arguments) = span.split_once('(').unwrap_or((span, ""));
    if arguments.chars().any(|c| c.is_ascii_uppercase()) {
        return None;
    }
    let path = path.trim_end_matches('!');
    let segments: Vec<&str> = path.split("::").collect();
    let identifier = |part: &&str| {
        !part.is_empty()
            && part.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
            && !part.starts_with(|c: char| c.is_ascii_digit())
    };
    if !segments.iter().all(identifier) || EXTERNAL.contains(&path) {
        return None;
    }
    let type_like = |part: &str| {
        part.starts_with(|c: char| c.is_ascii_uppercase())
            && part.chars().any(|c| c.is_ascii_lowercase())
    };
    let plainly_an_item = segments.len() > 1 || span.contains('(') || type_like(segments[0]);
    plainly_an_item.then(|| {
        Named::Item(
            segments
                .iter()
                // Crate names stand for their directories, checked as paths.
                .filter(|part| !part.starts_with("oponn_") && **part != "crate")
                .map(|part| (*part).to_owned())
                .collect(),
        )
    })
}

/// `a/{b,c}.rs` as `a/b.rs` and `a/c.rs`; other paths as themselves.
fn alternatives(span: &str) -> Vec<String> {
    match (span.find('{'), span.find('}')) {
        (Some(open), Some(close)) if open < close => span[open + 1..close]
            .split(',')
            .map(|choice| format!("{}{choice}{}", &span[..open], &span[close + 1..]))
            .collect(),
        _ => vec![span.to_owned()],
    }
}

/// Whether some path of `tree` is `path` or ends with `/path`.
fn path_exists(tree: &[String], path: &str) -> bool {
    let path = path.trim_start_matches("./");
    let bare = path.trim_end_matches('/');
    tree.iter().any(|candidate| {
        let candidate = candidate.trim_end_matches('/');
        candidate == bare || candidate.ends_with(&format!("/{bare}"))
    })
}

/// Every identifier Rust source in `files` defines: items, enum variants,
/// fields, macros.
fn defined_identifiers(files: &[PathBuf]) -> BTreeSet<String> {
    const KEYWORDS: &[&str] = &[
        "struct ",
        "enum ",
        "trait ",
        "fn ",
        "const ",
        "static ",
        "type ",
        "mod ",
        "union ",
        "macro_rules! ",
    ];
    let mut names = BTreeSet::new();
    for file in files {
        let Ok(text) = fs::read_to_string(file) else {
            continue;
        };
        for line in text.lines() {
            let line = line.trim_start();
            for keyword in KEYWORDS {
                for (at, _) in line.match_indices(keyword) {
                    let before = line[..at].chars().next_back();
                    if before.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_') {
                        continue;
                    }
                    names.insert(leading_identifier(&line[at + keyword.len()..]));
                }
            }
            // Enum variants (`Name,` `Name(` `Name {`) and fields (`name:`).
            let line = line.strip_prefix("pub(crate) ").unwrap_or(line);
            let line = line.strip_prefix("pub(super) ").unwrap_or(line);
            let line = line.strip_prefix("pub ").unwrap_or(line);
            let name = leading_identifier(line);
            if !name.is_empty()
                && line[name.len()..].starts_with([',', '(', ' ', ':', '{'])
                && !line.starts_with("//")
            {
                names.insert(name);
            }
        }
    }
    names
}

/// The identifier `text` begins with, if any.
fn leading_identifier(text: &str) -> String {
    text.chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
        .collect()
}

/// The Rust files of `tree`.
fn rust_files(root: &Path, tree: &[String]) -> Vec<PathBuf> {
    tree.iter()
        .filter(|path| path.ends_with(".rs"))
        .map(|path| root.join(path))
        .collect()
}

#[test]
fn the_architecture_map_names_only_what_exists() {
    let root = root();
    let tree = tree(&root);
    let defined = defined_identifiers(&rust_files(&root, &tree));
    let map = fs::read_to_string(root.join("ARCHITECTURE.md")).unwrap_or_default();
    let spans = code_spans(&map);
    assert!(spans.len() > 100, "ARCHITECTURE.md reads as a map");
    let mut missing = Vec::new();
    for span in spans {
        match named(&span) {
            Some(Named::Path(paths)) => {
                for path in paths {
                    if !path_exists(&tree, &path) {
                        missing.push(format!("path `{path}`"));
                    }
                }
            }
            Some(Named::Item(parts)) => {
                for part in parts {
                    if !defined.contains(&part) {
                        missing.push(format!("item `{part}` (in `{span}`)"));
                    }
                }
            }
            None => {}
        }
    }
    assert!(
        missing.is_empty(),
        "ARCHITECTURE.md names what does not exist:\n{}",
        missing.join("\n")
    );
}

#[test]
fn the_web_front_ends_import_neither_each_other_nor_upward() {
    const FRONT_ENDS: &[&str] = &["pages", "api", "auth"];
    const ABOVE: &[&str] = &["app", "server", "compose", "config", "secrets"];
    let source = root().join("oponn-web/src");
    let mut crossings = Vec::new();
    for front_end in FRONT_ENDS {
        let mut files = Vec::new();
        let mut pending = vec![source.join(front_end)];
        while let Some(dir) = pending.pop() {
            for entry in fs::read_dir(&dir).into_iter().flatten().flatten() {
                let path = entry.path();
                if path.is_dir() {
                    pending.push(path);
                } else {
                    files.push(path);
                }
            }
        }
        assert!(!files.is_empty(), "oponn-web/src/{front_end} has files");
        for file in files {
            let text = fs::read_to_string(&file).unwrap_or_default();
            for forbidden in FRONT_ENDS.iter().chain(ABOVE).filter(|m| *m != front_end) {
                if text.contains(&format!("crate::{forbidden}::"))
                    || text.contains(&format!("crate::{forbidden};"))
                    || text.contains(&format!("crate::{{{forbidden}"))
                {
                    crossings.push(format!("{} uses crate::{forbidden}", file.display()));
                }
            }
        }
    }
    assert!(crossings.is_empty(), "{}", crossings.join("\n"));
}

#[test]
fn code_spans_are_read_as_paths_items_or_neither() {
    assert_eq!(
        named("migrations/{sqlite,postgres}"),
        Some(Named::Path(vec![
            "migrations/sqlite".to_owned(),
            "migrations/postgres".to_owned()
        ]))
    );
    assert_eq!(
        named("App::with_services(..)"),
        Some(Named::Item(vec![
            "App".to_owned(),
            "with_services".to_owned()
        ]))
    );
    assert_eq!(
        named("oponn_simulate::run"),
        Some(Named::Item(vec!["run".to_owned()]))
    );
    assert_eq!(
        named("BallotService"),
        Some(Named::Item(vec!["BallotService".to_owned()]))
    );
    for neither in [
        "/vote/{id}",
        "DATABASE_URL",
        "oponn migrate",
        "503",
        "synchronous=FULL",
        "ok",
    ] {
        assert_eq!(named(neither), None, "{neither}");
    }
    assert!(path_exists(&["a/b/c.rs".to_owned()], "b/c.rs"));
    assert!(!path_exists(&["a/bc.rs".to_owned()], "c.rs"));
}
