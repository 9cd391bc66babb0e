//! Core's enums from the one table of wire values (`core_enums.toml`): the `wire_enum!`
//! definitions and `enum_values` of `redcap_core::types`, and the `ToParam` list of
//! `redcap_core::param`, so a value is listed once and every copy follows it.

use std::collections::BTreeMap;

use quote::{format_ident, quote};

use crate::spec::EnumSpec;

/// The generated files of `redcap-core/src/generated/`, by file name: `enums.rs` (included by
/// `types.rs`) and `enum_params.rs` (included by `param.rs`).
pub fn core_files(enums: &BTreeMap<String, EnumSpec>, source: &str) -> BTreeMap<String, String> {
    // By name: the order of definitions does not matter, and a map gives one.
    let ordered: Vec<&EnumSpec> = enums.values().collect();
    let defs = ordered.iter().map(|e| {
        let name = format_ident!("{}", e.name);
        let docs = e.doc.lines().map(|l| format!(" {l}"));
        let variants = e.values.iter().map(|v| {
            let variant = format_ident!("{}", v.variant);
            let wire = &v.wire;
            quote!(#variant = #wire)
        });
        quote! {
            wire_enum! {
                #(#[doc = #docs])*
                #name { #(#variants),* }
            }
        }
    });
    let arms = ordered.iter().map(|e| {
        let name = &e.name;
        let wires = e.values.iter().map(|v| &v.wire);
        quote!(#name => &[#(#wires),*],)
    });
    let enums_rs = quote! {
        #(#defs)*

        /// The allowed wire spellings of an enum, by the name the spec uses (for the dynamic encoder).
        pub fn enum_values(name: &str) -> Option<&'static [&'static str]> {
            Some(match name {
                #(#arms)*
                _ => return None,
            })
        }
    };
    let names = ordered.iter().map(|e| format_ident!("{}", e.name));
    let params_rs = quote! {
        enum_to_param!(#(crate::types::#names),*);
    };
    let mut out = BTreeMap::new();
    out.insert("enums.rs".to_owned(), crate::emit::render(source, enums_rs));
    out.insert("enum_params.rs".to_owned(), crate::emit::render(source, params_rs));
    out
}
