//! `redcap_macros::methods!("path/to/methods.toml")` turns a TOML file in the spec format into
//! typed request modules, exactly like the ones `redcap-api` ships for REDCap's own methods.
//!
//! Its use: REDCap External Modules publish API actions through `content=externalModule`,
//! `prefix=<module prefix>`, `action=<action>` and module-defined parameters. Describe them in TOML
//! (the prefix as a `fixed` field) and call them with the same clients as every other method.
//! The path is relative to the calling crate's `Cargo.toml`. Generated paths refer to
//! `::redcap_core`; pass `core = some::path` as a second argument to use a re-export instead.
//!
//! This crate is a shim: loading, validation and emission live in `redcap-codegen`.

use proc_macro::TokenStream;
use quote::quote;
use syn::parse::{Parse, ParseStream};

struct Args {
    file: syn::LitStr,
    core: Option<syn::Path>,
}

impl Parse for Args {
    fn parse(input: ParseStream<'_>) -> syn::Result<Self> {
        let file: syn::LitStr = input.parse()?;
        let mut core = None;
        if input.parse::<Option<syn::Token![,]>>()?.is_some() && !input.is_empty() {
            let key: syn::Ident = input.parse()?;
            if key != "core" {
                return Err(syn::Error::new(key.span(), "expected `core = <path>`"));
            }
            input.parse::<syn::Token![=]>()?;
            core = Some(input.parse()?);
            input.parse::<Option<syn::Token![,]>>()?;
        }
        Ok(Args { file, core })
    }
}

/// Expands to one module per method declared in the TOML file, plus `METHODS`, `method()` and
/// `prepare_examples()`.
#[proc_macro]
pub fn methods(input: TokenStream) -> TokenStream {
    let args = syn::parse_macro_input!(input as Args);
    expand(args).unwrap_or_else(syn::Error::into_compile_error).into()
}

fn expand(args: Args) -> syn::Result<proc_macro2::TokenStream> {
    let span = args.file.span();
    let dir =
        std::env::var("CARGO_MANIFEST_DIR").map_err(|_| syn::Error::new(span, "CARGO_MANIFEST_DIR is not set"))?;
    let path = std::path::Path::new(&dir).join(args.file.value());
    let text = std::fs::read_to_string(&path)
        .map_err(|e| syn::Error::new(span, format!("cannot read {}: {e}", path.display())))?;
    let mut paths = redcap_codegen::Paths::default();
    if let Some(core) = args.core {
        paths.core = core;
    }
    let tokens = redcap_codegen::expand_area(&args.file.value(), &text, &paths)
        .map_err(|e| syn::Error::new(span, e.to_string()))?;
    let tracked = path.to_string_lossy().into_owned();
    Ok(quote! {
        // Rebuild when the TOML changes.
        const _: &[u8] = include_bytes!(#tracked);
        #tokens
    })
}
