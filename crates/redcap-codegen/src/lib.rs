//! The REDCap API spec and the code generator.
//!
//! `spec/*.toml` describes every REDCap API method (content, action, parameters and their wire
//! encoding, response kind, rights, idempotency, examples). This library loads and validates it
//! (errors name the file, the method and the key) and emits one Rust module per method.
//! `cargo xtask codegen` writes the modules of `redcap-api`; the `redcap-macros` proc-macro uses
//! the same functions so a downstream crate can describe its own methods (an External Module's
//! API) in TOML. Output is deterministic: spec order and sorted maps only.
#![warn(missing_docs)]

pub mod emit;
pub mod emit_enums;
pub mod emit_rows;
pub mod spec;
pub mod validate;

use std::collections::BTreeMap;
use std::path::Path;

use proc_macro2::TokenStream;

pub use emit::Paths;
pub use spec::{AreaSpec, Spec, SpecError, SpecErrors, core_enums, load_dir};

/// Generates every file for `spec_dir` (shown in stamps as `display_dir`).
pub fn generate_dir(spec_dir: &Path, display_dir: &str) -> Result<BTreeMap<String, String>, SpecErrors> {
    let spec = load_dir(spec_dir, display_dir)?;
    Ok(emit::files(&spec, display_dir, &Paths::default()))
}

/// The files of `redcap-core/src/generated/`: core's enums from the one table of wire values.
pub fn core_enum_files() -> BTreeMap<String, String> {
    emit_enums::core_files(&core_enums(), "redcap-codegen/src/core_enums.toml")
}

/// Parses and validates one area file (a downstream crate's own methods) against the core enums.
pub fn load_area(display_name: &str, text: &str) -> Result<AreaSpec, SpecErrors> {
    let area = spec::parse_area(display_name, text)?;
    let spec = Spec { enums: core_enums(), areas: vec![area] };
    validate::validate(&spec)?;
    let Spec { mut areas, .. } = spec;
    areas.pop().ok_or_else(|| {
        SpecError { file: display_name.to_owned(), method: None, key: String::new(), message: "no area".into() }.into()
    })
}

/// Inline modules for one area file: what `redcap_macros::methods!` expands to.
pub fn expand_area(display_name: &str, text: &str, paths: &Paths) -> Result<TokenStream, SpecErrors> {
    let area = load_area(display_name, text)?;
    Ok(emit::inline_modules(&[area], &core_enums(), paths))
}

/// Compares generated files with those in `out_dir`: the stale, missing and extra paths.
pub fn stale_files(generated: &BTreeMap<String, String>, out_dir: &Path) -> Vec<String> {
    let mut stale = Vec::new();
    for (path, content) in generated {
        match std::fs::read_to_string(out_dir.join(path)) {
            Ok(on_disk) if &on_disk == content => {}
            _ => stale.push(path.clone()),
        }
    }
    let mut on_disk = Vec::new();
    collect_rs(out_dir, out_dir, &mut on_disk);
    for path in on_disk {
        if !generated.contains_key(&path) {
            stale.push(path);
        }
    }
    stale.sort();
    stale
}

fn collect_rs(root: &Path, dir: &Path, out: &mut Vec<String>) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            collect_rs(root, &p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            if let Ok(rel) = p.strip_prefix(root) {
                out.push(rel.to_string_lossy().replace('\\', "/"));
            }
        }
    }
}

/// Writes generated files into `out_dir`, removing `.rs` files it no longer generates.
pub fn write_files(generated: &BTreeMap<String, String>, out_dir: &Path) -> std::io::Result<()> {
    let mut on_disk = Vec::new();
    collect_rs(out_dir, out_dir, &mut on_disk);
    for path in on_disk {
        if !generated.contains_key(&path) {
            std::fs::remove_file(out_dir.join(&path))?;
        }
    }
    for (path, content) in generated {
        let full = out_dir.join(path);
        if let Some(parent) = full.parent() {
            std::fs::create_dir_all(parent)?;
        }
        if std::fs::read_to_string(&full).ok().as_deref() != Some(content.as_str()) {
            std::fs::write(&full, content)?;
        }
    }
    Ok(())
}
