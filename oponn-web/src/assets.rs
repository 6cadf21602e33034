//! Files compiled into the binary: templates and static assets, so the
//! service needs nothing beside itself at run time (and no CDN).

use rust_embed::RustEmbed;

/// The minijinja templates under `templates/`.
#[derive(RustEmbed)]
#[folder = "templates/"]
pub(crate) struct TemplateFiles;

/// CSS, JavaScript and vendored libraries under `static/`, served at `/static`.
#[derive(RustEmbed)]
#[folder = "static/"]
pub(crate) struct StaticFiles;
