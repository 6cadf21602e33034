//! Checks of the repository itself, run as tests (`cargo test -p xtask`):
//! what a reviewer would otherwise have to notice by hand.
//!
//! - ARCHITECTURE.md names, in backticks, only paths and Rust items that
//!   exist, so the map cannot drift from the territory unnoticed.
//! - Each of `oponn-web`'s layers imports only from itself and the layers
//!   below, and its front ends (`pages/`, `api/`, `auth/`) not from each
//!   other.

use std::collections::{BTreeMap, BTreeSet};
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
/// `Csrf`, serde's `Serialize`, the KMS operations, HTTP headers, Redis's
/// `SUBSCRIBE`, and the words of a planned port.
const EXTERNAL: &[&str] = &[
    "Csrf",
    "Serialize",
    "Encrypt",
    "Decrypt",
    "Origin",
    "Host",
    "put",
    "get",
    "delete",
    "sqlx::migrate",
    "SUBSCRIBE",
];

/// What a code span names, when it names something checkable.
#[derive(Debug, PartialEq, Eq)]
enum Named {
    /// A file or directory (each alternative of a `{a,b}` group).
    Path(Vec<String>),
    /// A Rust item, or a name the schema or the code spells out (a table,
    /// a cookie): the identifiers of its path (`A::b` is `A`, `b`).
    Item(Vec<String>),
}

/// Reads a code span: a path when it has a `/` or a source file's
/// extension (and is not a route, a URL or a media type), an item when it
/// is an identifier or a Rust path (`A::b`, `f()`, `m!`; settings such as
/// `DATABASE_URL` too, which the code spells out); `None` for the rest
/// (commands, SQL, literals).
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
    Some(Named::Item(
        segments
            .iter()
            // Crate names stand for their directories, checked as paths.
            .filter(|part| !part.starts_with("oponn_") && **part != "crate")
            .map(|part| (*part).to_owned())
            .collect(),
    ))
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

/// What the sources define, to check the map's names against.
#[derive(Default)]
struct Definitions {
    /// Each identifier Rust code defines (an item, an enum variant, a
    /// field), with the files that define it.
    items: BTreeMap<String, BTreeSet<PathBuf>>,
    /// Each type or trait, with the files that define or implement it.
    types: BTreeMap<String, BTreeSet<PathBuf>>,
    /// The words of the SQL migrations (tables, columns, constraints) and
    /// of Rust string literals (cookie names, generated macros).
    spelled: BTreeSet<String>,
}

impl Definitions {
    fn read(root: &Path, tree: &[String]) -> Self {
        let mut found = Self::default();
        for path in tree {
            let file = root.join(path);
            let Ok(text) = fs::read_to_string(&file) else {
                continue;
            };
            if path.ends_with(".rs") {
                found.read_rust(&file, &text);
            } else if path.ends_with(".sql") {
                found.spelled.extend(words(&text));
            }
        }
        found
    }

    fn read_rust(&mut self, file: &Path, text: &str) {
        // The words of string literals (roughly: between quotes).
        for literal in text.split('"').skip(1).step_by(2) {
            self.spelled.extend(words(literal));
        }
        const ITEMS: &[&str] = &[
            "fn ",
            "struct ",
            "enum ",
            "trait ",
            "const ",
            "static ",
            "type ",
            "mod ",
            "union ",
            "macro_rules! ",
        ];
        for line in text.lines() {
            let code = line.trim_start();
            if code.starts_with("//") {
                continue;
            }
            for keyword in ITEMS {
                for (at, _) in code.match_indices(keyword) {
                    let before = code[..at].chars().next_back();
                    if before.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_') {
                        continue;
                    }
                    let name = leading_identifier(&code[at + keyword.len()..]);
                    if ["struct ", "enum ", "trait ", "type "].contains(keyword) {
                        self.type_in(&name, file);
                    }
                    self.item_in(&name, file);
                }
            }
            // `impl X`, `impl<T> X<T>`, `impl Trait for X`.
            if let Some(rest) = code.strip_prefix("impl") {
                let rest = rest.trim_start_matches(|c: char| c != ' ').trim_start();
                let target = rest.rsplit(" for ").next().unwrap_or(rest);
                let name = target.rsplit("::").next().unwrap_or(target);
                self.type_in(&leading_identifier(name), file);
            }
            // Enum variants (`Name,` `Name(` `Name {`) and fields (`name: T`).
            let declared = code
                .strip_prefix("pub(crate) ")
                .or_else(|| code.strip_prefix("pub(super) "))
                .or_else(|| code.strip_prefix("pub "))
                .unwrap_or(code);
            let name = leading_identifier(declared);
            let after = &declared[name.len()..];
            let variant = name.starts_with(|c: char| c.is_ascii_uppercase())
                && (after.is_empty() || after.starts_with([',', '(', ' ']));
            let field = after.starts_with(": ") && line.starts_with("    ");
            if variant || field {
                self.item_in(&name, file);
            }
        }
    }

    fn item_in(&mut self, name: &str, file: &Path) {
        if !name.is_empty() {
            self.items
                .entry(name.to_owned())
                .or_default()
                .insert(file.to_path_buf());
        }
    }

    fn type_in(&mut self, name: &str, file: &Path) {
        if !name.is_empty() {
            self.types
                .entry(name.to_owned())
                .or_default()
                .insert(file.to_path_buf());
        }
    }

    /// Why `parts` (a name, or a path `A::b`, `module::item`) names
    /// nothing the sources define; `None` when it names something.
    fn missing(&self, parts: &[String]) -> Option<String> {
        let (last, owners) = parts.split_last()?;
        let defined_in = |name: &str| self.items.get(name);
        if owners.is_empty() {
            let found = defined_in(last).is_some() || self.spelled.contains(last);
            return (!found).then(|| format!("`{last}` is defined nowhere"));
        }
        // The member must be defined where its owner is: a type's file or
        // impl, or a module's own file or folder.
        let owner = owners.last()?;
        let files: Vec<&PathBuf> = if owner.starts_with(|c: char| c.is_ascii_uppercase()) {
            self.types
                .get(owner.as_str())
                .into_iter()
                .flatten()
                .collect()
        } else {
            self.items
                .values()
                .flatten()
                .filter(|file| {
                    let path = file.to_string_lossy();
                    path.ends_with(&format!("/{owner}.rs")) || path.contains(&format!("/{owner}/"))
                })
                .collect()
        };
        if files.is_empty() {
            return Some(format!("`{owner}` is defined nowhere"));
        }
        let found = defined_in(last)
            .is_some_and(|defined| files.iter().any(|file| defined.contains(*file)));
        (!found).then(|| format!("`{owner}::{last}` is not defined where `{owner}` is"))
    }
}

/// The identifier-like words of `text`.
fn words(text: &str) -> impl Iterator<Item = String> + '_ {
    text.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .filter(|word| !word.is_empty())
        .map(str::to_owned)
}

/// The identifier `text` begins with, if any.
fn leading_identifier(text: &str) -> String {
    text.chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
        .collect()
}

#[test]
fn the_architecture_map_names_only_what_exists() {
    let root = root();
    let tree = tree(&root);
    let defined = Definitions::read(&root, &tree);
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
                // A lone name may also be a crate's or a folder's.
                let folder =
                    matches!(parts.as_slice(), [name] if path_exists(&tree, &format!("{name}/")));
                if let Some(why) = defined.missing(&parts).filter(|_| !folder) {
                    missing.push(format!("`{span}`: {why}"));
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

/// `oponn-web`'s modules by layer, top first: each may import from its
/// own layer and the layers below it, and a front end from no other front
/// end.
const WEB_LAYERS: &[(&str, &[&str])] = &[
    ("root", &["app", "server", "compose", "secrets"]),
    ("front end", &["pages", "api", "auth"]),
    (
        "shared",
        &[
            "state",
            "identity",
            "providers",
            "html",
            "live",
            "export",
            "wire",
            "views",
            "guard",
            "rates",
            "metrics",
            "assets",
            "share",
            "spliced",
            "csrf",
        ],
    ),
    ("configuration", &["config", "limits"]),
];

/// The top-level modules of `crate::…` paths in `code`, including each
/// member of a `use crate::{a, b::c}` group.
fn crate_modules(code: &str) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    for (at, _) in code.match_indices("crate::") {
        let rest = &code[at + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            let mut depth = 0usize;
            let mut member_start = true;
            for (offset, c) in group.char_indices() {
                match c {
                    '{' => depth += 1,
                    '}' if depth == 0 => break,
                    '}' => depth -= 1,
                    ',' if depth == 0 => member_start = true,
                    c if member_start && (c.is_ascii_alphanumeric() || c == '_') => {
                        found.insert(leading_identifier(&group[offset..]));
                        member_start = false;
                    }
                    _ => {}
                }
            }
        } else {
            found.insert(leading_identifier(rest));
        }
    }
    found
}

#[test]
fn each_web_layer_imports_only_its_own_and_the_layers_below() {
    let source = root().join("oponn-web/src");
    let layer_of = |module: &str| {
        WEB_LAYERS
            .iter()
            .position(|(_, modules)| modules.contains(&module))
    };
    let mut crossings = Vec::new();
    let mut checked = 0;
    for (layer, (_, modules)) in WEB_LAYERS.iter().enumerate() {
        for module in *modules {
            let mut files = vec![source.join(format!("{module}.rs"))];
            let mut pending = vec![source.join(module)];
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
            for file in files {
                let Ok(text) = fs::read_to_string(&file) else {
                    continue;
                };
                checked += 1;
                let code: String = text
                    .lines()
                    .filter(|line| !line.trim_start().starts_with("//"))
                    .collect::<Vec<_>>()
                    .join("\n");
                for used in crate_modules(&code) {
                    let Some(used_layer) = layer_of(&used) else {
                        continue;
                    };
                    let upward = used_layer < layer;
                    let sibling_front_end = used_layer == 1 && layer == 1 && used != *module;
                    if upward || sibling_front_end {
                        crossings.push(format!("{} uses crate::{used}", file.display()));
                    }
                }
            }
        }
    }
    assert!(checked > 20, "the web crate's modules were read");
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
    for neither in ["/vote/{id}", "oponn migrate", "503", "synchronous=FULL"] {
        assert_eq!(named(neither), None, "{neither}");
    }
    assert_eq!(
        crate_modules("use crate::{html, api::{x, y}};\nuse crate::state::AppState;"),
        ["api", "html", "state"]
            .map(str::to_owned)
            .into_iter()
            .collect()
    );
    assert!(path_exists(&["a/b/c.rs".to_owned()], "b/c.rs"));
    assert!(!path_exists(&["a/bc.rs".to_owned()], "c.rs"));
}
