//! Registers every contract case and service story by its definition.
//!
//! A case is a `pub async fn` at the top level of a suite's module
//! (`src/contract/{suite}.rs`), a story one in `src/stories.rs`. This
//! script writes, for each suite, the `#[macro_export]` macro that turns
//! every case into one `#[test]` (`ballot_repository_contract!` and the
//! rest), so defining a case is all it takes to run it against every
//! adapter: there is no list to forget.

use std::fmt::Write as _;
use std::path::Path;
use std::{env, fs};

/// Each suite: its module under `src/contract/`, and the macro that runs it.
const SUITES: &[(&str, &str)] = &[
    ("repository", "ballot_repository_contract"),
    ("accounts", "account_repository_contract"),
    ("lock", "vote_lock_contract"),
    ("broadcaster", "broadcaster_contract"),
    ("key_wrapper", "key_wrapper_contract"),
    ("clock", "clock_contract"),
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo::rerun-if-changed=src/contract");
    println!("cargo::rerun-if-changed=src/stories.rs");
    let mut code = String::new();
    for (module, name) in SUITES {
        let cases = cases_in(&Path::new("src/contract").join(format!("{module}.rs")))?;
        writeln!(
            code,
            "/// One `#[test]` per case of [`contract::{module}`](crate::contract::{module}), \
             each on a port from `$make`.\n\
             #[macro_export]\n\
             macro_rules! {name} {{\n    ($make:path) => {{\n        \
             $crate::__contract_tests!({module}, $make, [{}]);\n    }};\n}}\n",
            cases.join(", ")
        )?;
    }
    let stories = cases_in(Path::new("src/stories.rs"))?;
    writeln!(
        code,
        "/// One `#[test]` per [`stories`](crate::stories) scenario, each on the \
         whole service over a repository from `$make` (other ports in memory).\n\
         #[macro_export]\n\
         macro_rules! service_stories {{\n    ($make:path) => {{\n        \
         $crate::__story_tests!($make, [{}]);\n    }};\n}}",
        stories.join(", ")
    )?;
    let out = Path::new(&env::var("OUT_DIR")?).join("suites.rs");
    fs::write(out, code)?;
    Ok(())
}

/// The names of the top-level `pub async fn`s of the file at `path`.
fn cases_in(path: &Path) -> Result<Vec<String>, Box<dyn std::error::Error>> {
    let text = fs::read_to_string(path)?;
    let cases: Vec<String> = text
        .lines()
        .filter_map(|line| line.strip_prefix("pub async fn "))
        .filter_map(|rest| rest.split(['(', '<']).next())
        .map(|name| name.trim().to_owned())
        .collect();
    if cases.is_empty() {
        return Err(format!("{} defines no case", path.display()).into());
    }
    Ok(cases)
}
