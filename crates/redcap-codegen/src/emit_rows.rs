//! Emission of the `rows` module: one struct per `[[row]]` and one enum per `[[value_enum]]`.

use proc_macro2::{Ident, Span, TokenStream};
use quote::quote;

use crate::emit::Paths;
use crate::spec::{AreaSpec, ColumnSpec, RowSpec, ValueEnumSpec};
use crate::validate::{ColumnType, column_rust_name, parse_column_type};

fn ident(name: &str) -> Ident {
    Ident::new(name, Span::call_site())
}

fn doc_lines(text: &str) -> TokenStream {
    text.lines()
        .map(|l| {
            let l = if l.is_empty() { String::new() } else { format!(" {l}") };
            quote!(#[doc = #l])
        })
        .collect()
}

/// `::redcap_core` as text for serde's string-valued attributes.
fn path_text(core: &syn::Path) -> String {
    quote!(#core).to_string().replace(' ', "")
}

/// Whether any area declares rows or value enums (then a `rows` module is emitted).
pub fn has_rows(areas: &[AreaSpec]) -> bool {
    areas.iter().any(|a| !a.rows.is_empty() || !a.value_enums.is_empty())
}

/// The items of the `rows` module.
pub fn rows_items(areas: &[AreaSpec], paths: &Paths) -> TokenStream {
    let enums = areas.iter().flat_map(|a| a.value_enums.iter()).map(|e| value_enum(e, paths));
    let rows = areas.iter().flat_map(|a| a.rows.iter()).map(|r| row_struct(r, paths));
    quote!(#(#enums)* #(#rows)*)
}

fn value_enum(e: &ValueEnumSpec, paths: &Paths) -> TokenStream {
    let core = &paths.core;
    let name = ident(&e.name);
    let doc = doc_lines(&format!("{}\n\nA value this version does not know is kept as `Other`.", e.doc.trim()));
    let variants = e.values.iter().map(|v| {
        let var = ident(&v.variant);
        let d = doc_lines(&format!("`{}`: {}", v.wire, v.doc));
        quote!(#d #var,)
    });
    let to_str = e.values.iter().map(|v| {
        let var = ident(&v.variant);
        let w = &v.wire;
        quote!(#name::#var => #w,)
    });
    let from_str = e.values.iter().map(|v| {
        let var = ident(&v.variant);
        let w = &v.wire;
        quote!(#w => #name::#var,)
    });
    let wires = e.values.iter().map(|v| &v.wire);
    quote! {
        #doc
        #[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        #[non_exhaustive]
        pub enum #name {
            #(#variants)*
            /// A value this version of the library does not know, as received.
            Other(::std::string::String),
        }

        impl #name {
            /// Every known wire spelling, in documentation order.
            pub const KNOWN: &'static [&'static str] = &[#(#wires),*];

            /// The wire spelling.
            pub fn as_str(&self) -> &str {
                match self {
                    #(#to_str)*
                    #name::Other(s) => s,
                }
            }
        }

        impl ::core::convert::From<&str> for #name {
            fn from(s: &str) -> Self {
                match s {
                    #(#from_str)*
                    other => #name::Other(::std::borrow::ToOwned::to_owned(other)),
                }
            }
        }

        impl ::core::str::FromStr for #name {
            type Err = ::core::convert::Infallible;
            fn from_str(s: &str) -> ::core::result::Result<Self, Self::Err> {
                ::core::result::Result::Ok(#name::from(s))
            }
        }

        impl ::core::fmt::Display for #name {
            fn fmt(&self, f: &mut ::core::fmt::Formatter<'_>) -> ::core::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl #core::__private::serde::Serialize for #name {
            fn serialize<S: #core::__private::serde::Serializer>(&self, s: S) -> ::core::result::Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }

        impl<'de> #core::__private::serde::Deserialize<'de> for #name {
            fn deserialize<D: #core::__private::serde::Deserializer<'de>>(d: D) -> ::core::result::Result<Self, D::Error> {
                #core::de::string(d).map(|s| #name::from(s.as_str()))
            }
        }
    }
}

/// Rust type, deserializer and serializer (names in `redcap_core::de` / `ser`) of a column.
fn column_parts(c: &ColumnSpec, core: &syn::Path) -> (TokenStream, &'static str, Option<&'static str>) {
    let ty = match parse_column_type(&c.ty) {
        Ok(t) => t,
        Err(e) => return (quote!(compile_error!(#e)), "string", None),
    };
    let map = quote!(::std::collections::BTreeMap<::std::string::String, u64>);
    let (inner, de, opt_de, ser, opt_ser): (TokenStream, _, _, _, _) = match &ty {
        ColumnType::String => (quote!(::std::string::String), "string", "blank_as_none", None, "opt_text"),
        ColumnType::Integer => (quote!(u64), "u64", "opt_u64", Some("text"), "opt_text"),
        ColumnType::Number => (quote!(f64), "f64", "opt_f64", Some("text"), "opt_text"),
        ColumnType::Boolean => (quote!(bool), "bool01", "opt_bool01", Some("bool01"), "opt_bool01"),
        ColumnType::Flag => (quote!(bool), "bool01", "opt_bool01", Some("flag"), "opt_flag"),
        ColumnType::Date => (quote!(#core::Date), "date", "opt_date", Some("text"), "opt_text"),
        ColumnType::DateTime => (quote!(#core::DateTime), "datetime", "opt_datetime", Some("text"), "opt_text"),
        ColumnType::Map => return (map, "number_map", Some("number_map")),
        ColumnType::Enum(name) => {
            let n = ident(name);
            (quote!(#n), "parse", "opt_parse", Some("text"), "opt_text")
        }
    };
    if c.optional { (quote!(::core::option::Option<#inner>), opt_de, Some(opt_ser)) } else { (inner, de, ser) }
}

fn type_words(c: &ColumnSpec) -> String {
    let t = match parse_column_type(&c.ty) {
        Ok(ColumnType::String) => "text".to_owned(),
        Ok(ColumnType::Integer) => "whole number".to_owned(),
        Ok(ColumnType::Number) => "number".to_owned(),
        Ok(ColumnType::Boolean) => "`0`/`1`".to_owned(),
        Ok(ColumnType::Flag) => "`y`/blank".to_owned(),
        Ok(ColumnType::Date) => "`YYYY-MM-DD`".to_owned(),
        Ok(ColumnType::DateTime) => "`YYYY-MM-DD HH:MM[:SS]`".to_owned(),
        Ok(ColumnType::Map) => "names to numbers".to_owned(),
        Ok(ColumnType::Enum(n)) => format!("[`{n}`]"),
        Err(_) => "?".to_owned(),
    };
    if c.optional { format!("{t}, blank or absent as `None`") } else { t }
}

/// A column whose blank or absence has a natural value (an empty map, a `y`/blank flag unset).
fn defaulted(c: &ColumnSpec) -> bool {
    matches!(parse_column_type(&c.ty), Ok(ColumnType::Map | ColumnType::Flag))
}

fn row_struct(r: &RowSpec, paths: &Paths) -> TokenStream {
    let core = &paths.core;
    let core_text = path_text(core);
    let serde_crate = format!("{core_text}::__private::serde");
    let name = ident(&r.name);
    let doc = doc_lines(&format!(
        "{}\n\nReads REDCap's json, csv and xml alike (numbers or text); columns this version does not know are \
         kept in `extra`. Serializes as an import's row (values as text{}).",
        r.doc.trim(),
        if r.omit_blank { ", blank optional columns left out" } else { "" }
    ));
    let fields = r.columns.iter().map(|c| {
        let f = ident(&column_rust_name(c));
        let (ty, de, ser) = column_parts(c, core);
        let mut d = format!("`{}` ({}): {}", c.name, type_words(c), c.doc.trim());
        if let Some(v) = &c.since {
            d.push_str(&format!(" Since REDCap {v}."));
        }
        let d = doc_lines(&d);
        let wire = &c.name;
        let de = format!("{core_text}::de::{de}");
        let rename = (column_rust_name(c) != c.name).then(|| quote!(rename = #wire,));
        let default = (c.optional || defaulted(c)).then(|| quote!(default,));
        let ser = ser.map(|s| {
            let s = format!("{core_text}::ser::{s}");
            quote!(serialize_with = #s,)
        });
        let aliases = c.aliases.iter().map(|a| quote!(alias = #a,));
        let skip = match parse_column_type(&c.ty) {
            Ok(ColumnType::Map) if r.omit_blank => {
                Some(quote!(skip_serializing_if = "::std::collections::BTreeMap::is_empty",))
            }
            _ if r.omit_blank && c.optional => Some(quote!(skip_serializing_if = "::core::option::Option::is_none",)),
            _ => None,
        };
        quote! {
            #d
            #[serde(#rename #(#aliases)* #default #skip deserialize_with = #de, #ser)]
            pub #f: #ty,
        }
    });
    let required: Vec<&ColumnSpec> = r.columns.iter().filter(|c| !c.optional && !defaulted(c)).collect();
    let args = required.iter().map(|c| {
        let f = ident(&column_rust_name(c));
        let (ty, _, _) = column_parts(c, core);
        if matches!(parse_column_type(&c.ty), Ok(ColumnType::String)) {
            quote!(#f: impl ::core::convert::Into<::std::string::String>)
        } else {
            quote!(#f: #ty)
        }
    });
    let inits = r.columns.iter().map(|c| {
        let f = ident(&column_rust_name(c));
        if required.iter().any(|q| q.name == c.name) {
            if matches!(parse_column_type(&c.ty), Ok(ColumnType::String)) {
                quote!(#f: #f.into(),)
            } else {
                quote!(#f,)
            }
        } else {
            quote!(#f: ::core::default::Default::default(),)
        }
    });
    let new_doc = if required.is_empty() {
        "A row with every column blank.".to_owned()
    } else {
        let names: Vec<String> = required.iter().map(|c| format!("`{}`", c.name)).collect();
        format!("A row with {} set and every other column blank.", names.join(", "))
    };
    let default_impl = required.is_empty().then(|| {
        quote! {
            impl ::core::default::Default for #name {
                fn default() -> Self {
                    #name::new()
                }
            }
        }
    });
    let columns = r.columns.iter().map(|c| &c.name);
    let xml_root = &r.xml_root;
    quote! {
        #doc
        #[derive(Clone, Debug, PartialEq, #core::__private::serde::Deserialize, #core::__private::serde::Serialize)]
        #[serde(crate = #serde_crate)]
        #[non_exhaustive]
        pub struct #name {
            #(#fields)*
            /// Columns this version of the library does not know, as received (a newer REDCap may add
            /// some); sent back unchanged when the row is imported.
            #[serde(flatten)]
            pub extra: #core::__private::serde_json::Map<::std::string::String, #core::__private::serde_json::Value>,
        }

        impl #name {
            /// Root element of this row's XML `data` on import.
            pub const XML_ROOT: &'static str = #xml_root;

            /// The known columns, in REDCap's order.
            pub const COLUMNS: &'static [&'static str] = &[#(#columns),*];

            #[doc = #new_doc]
            #[allow(clippy::too_many_arguments)]
            pub fn new(#(#args),*) -> Self {
                #name { #(#inits)* extra: ::core::default::Default::default() }
            }
        }

        #default_impl
    }
}
