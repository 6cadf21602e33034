//! The `oponn` binary. For now it only proves the core wiring; the web
//! service lands with the web issue.
#![forbid(unsafe_code)]

fn main() {
    println!(
        "oponn {}: the web service is not built yet",
        env!("CARGO_PKG_VERSION")
    );
}
