//! Code emission: one module per method, area modules, and the registry.

use std::collections::BTreeMap;

use proc_macro2::{Ident, Span, TokenStream};
use quote::{format_ident, quote};

use crate::spec::ResponseKind;
use crate::spec::{AreaSpec, EnumSpec, MethodSpec, ParamSpec};
use crate::validate::{ParamType, Scalar, rust_name};

/// Paths the generated code refers to.
#[derive(Clone)]
pub struct Paths {
    /// Path of the core crate, e.g. `::redcap_core`.
    pub core: syn::Path,
}

impl std::fmt::Debug for Paths {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let core = &self.core;
        write!(f, "Paths {{ core: {} }}", quote!(#core))
    }
}

impl Default for Paths {
    fn default() -> Self {
        Paths { core: syn::parse_quote!(::redcap_core) }
    }
}

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

fn inner_doc_lines(text: &str) -> TokenStream {
    text.lines()
        .map(|l| {
            let l = if l.is_empty() { String::new() } else { format!(" {l}") };
            quote!(#![doc = #l])
        })
        .collect()
}

struct Resolved<'a> {
    spec: &'a ParamSpec,
    ty: ParamType,
    field: Ident,
}

impl Resolved<'_> {
    fn scalar_type(&self, core: &syn::Path) -> TokenStream {
        match &self.ty.scalar {
            Scalar::String | Scalar::Timestamp | Scalar::Minute => quote!(::std::string::String),
            Scalar::Int => quote!(u64),
            Scalar::Bool => quote!(bool),
            Scalar::File => quote!(#core::Upload),
            Scalar::Enum(name) => {
                let n = ident(name);
                quote!(#core::#n)
            }
        }
    }

    /// Required, or optional with a client default for a flag, is a plain field.
    fn plain(&self) -> bool {
        self.ty.list || self.spec.required || self.ty.scalar == Scalar::Bool
    }

    fn field_type(&self, core: &syn::Path) -> TokenStream {
        let s = self.scalar_type(core);
        if self.ty.list {
            quote!(::std::vec::Vec<#s>)
        } else if self.plain() {
            s
        } else {
            quote!(::core::option::Option<#s>)
        }
    }
}

/// A TOML value as a Rust expression of the parameter's scalar type.
fn value_expr(ty: &ParamType, v: &toml::Value, core: &syn::Path, enums: &BTreeMap<String, EnumSpec>) -> TokenStream {
    let scalar = |v: &toml::Value| -> TokenStream {
        match (&ty.scalar, v) {
            (Scalar::Int, toml::Value::Integer(n)) => {
                let n = *n as u64;
                quote!(#n)
            }
            (Scalar::Bool, toml::Value::Boolean(b)) => quote!(#b),
            (Scalar::Enum(name), toml::Value::String(s)) => {
                let variant = enums.get(name).and_then(|e| e.values.iter().find(|x| &x.wire == s));
                let n = ident(name);
                match variant {
                    Some(x) => {
                        let variant = ident(&x.variant);
                        quote!(#core::#n::#variant)
                    }
                    // Validation rejects it first; emitted anyway, the compiler names it.
                    None => {
                        let msg = format!("spec: `{s}` is not a value of {name}");
                        quote!(::core::compile_error!(#msg))
                    }
                }
            }
            (Scalar::File, toml::Value::Table(t)) => {
                let name = t.get("name").and_then(|v| v.as_str()).unwrap_or_default();
                let text = t.get("text").and_then(|v| v.as_str()).unwrap_or_default();
                quote!(#core::Upload::from_bytes(#name, #text))
            }
            (_, toml::Value::String(s)) => quote!(::std::string::String::from(#s)),
            (_, other) => {
                let s = other.to_string();
                quote!(compile_error!(concat!("unsupported spec value ", #s)))
            }
        }
    };
    if ty.list {
        let items = v.as_array().map(|a| a.iter().map(scalar).collect::<Vec<_>>()).unwrap_or_default();
        quote!(::std::vec![#(#items),*])
    } else {
        scalar(v)
    }
}

/// The output type, the decoder (a function of `redcap_core::decode`) and core's
/// `ResponseKind` variant of a response kind.
fn response_type(kind: &ResponseKind, core: &syn::Path) -> (TokenStream, Ident, Ident) {
    let (ty, variant) = match kind {
        ResponseKind::Data => (quote!(#core::DataResponse), "Data"),
        ResponseKind::Bytes => (quote!(#core::FileDownload), "Bytes"),
        ResponseKind::Text => (quote!(::std::string::String), "Text"),
        ResponseKind::One => (quote!(()), "One"),
        ResponseKind::Count => (quote!(u64), "Count"),
        ResponseKind::Empty => (quote!(()), "Empty"),
        ResponseKind::Import => (quote!(#core::ImportOutcome), "Import"),
        ResponseKind::NewToken => (quote!(#core::Token), "NewToken"),
        ResponseKind::Version => (quote!(#core::Version), "Version"),
        ResponseKind::FolderId => (quote!(u64), "FolderId"),
        ResponseKind::FileRepositoryList => (quote!(::std::vec::Vec<#core::FileRepositoryEntry>), "FileRepositoryList"),
        // Validation rejects it first; emitted anyway, the compiler names it.
        ResponseKind::Unknown(name) => {
            let msg = format!("spec: unknown response kind `{name}`");
            return (quote!(::core::compile_error!(#msg)), ident("data"), ident("Data"));
        }
    };
    (ty, ident(kind.name()), ident(variant))
}

fn describe_response(m: &MethodSpec) -> &'static str {
    match &m.response {
        ResponseKind::Data if m.streaming => "data in the requested format (may be streamed)",
        ResponseKind::Data => "data in the requested format",
        ResponseKind::Bytes => "file bytes, streamed; name and type in the headers",
        ResponseKind::Text => "a bare string",
        ResponseKind::One => "`1` on success (anything else is an error)",
        ResponseKind::Count => "a count",
        ResponseKind::Empty => "an empty body",
        ResponseKind::Import => "per `returnContent`: count, ids, auto_ids or nothing",
        ResponseKind::NewToken => "the new project's API token",
        ResponseKind::Version => "`MAJOR.MINOR.PATCH`",
        ResponseKind::FolderId => "the new folder's id",
        ResponseKind::FileRepositoryList => "folders and files of one level",
        ResponseKind::Unknown(_) => "",
    }
}

/// Where the facts come from, as a reader can follow it: REDCap's API help pages (on every REDCap
/// server, `/api/help/`) by the method's anchor, and the spec file. The spec's `reference` also
/// cites private notes (`reference §…`, `KB …`); those stay in the spec.
fn public_sources(area: &AreaSpec, m: &MethodSpec) -> String {
    let help: Vec<&str> = m
        .reference
        .split(';')
        .filter_map(|part| part.trim().strip_prefix("API help:"))
        .flat_map(|anchors| anchors.split(','))
        .map(str::trim)
        .filter(|a| !a.is_empty())
        .collect();
    let mut out = String::new();
    if !help.is_empty() {
        let anchors: Vec<String> = help.iter().map(|a| format!("`{a}`")).collect();
        out.push_str(&format!("REDCap API documentation (`/api/help/`, {}); ", anchors.join(", ")));
    }
    out.push_str(&format!("`{}`", area.file));
    out
}

/// The module header: a fixed shape for every method.
fn header(area: &AreaSpec, m: &MethodSpec) -> String {
    let call = match &m.action {
        Some(a) => format!("`content={}`, `action={a}`", m.content),
        None if m.params.iter().any(|p| p.name == "data" && p.required) => {
            format!("`content={}` with `data`", m.content)
        }
        None => format!("`content={}`", m.content),
    };
    let mut h = format!("{call}: {}\n\n", m.summary);
    h.push_str("| | |\n|---|---|\n");
    h.push_str(&format!("| Method id | `{}.{}` |\n", area.area, m.name));
    h.push_str(&format!("| Response | {} |\n", describe_response(m)));
    h.push_str(&format!(
        "| Token | {} |\n",
        match m.token.as_str() {
            "super" => "super token (64 hex characters)",
            "either" => "project or super token",
            _ => "project token",
        }
    ));
    if !m.rights.is_empty() {
        h.push_str(&format!("| Rights | {} |\n", m.rights.join(", ")));
    }
    h.push_str(&format!(
        "| Retried on transient failure | {} |\n",
        if m.idempotent { "yes (idempotent)" } else { "never (not idempotent)" }
    ));
    if let Some(v) = &m.since {
        h.push_str(&format!("| Since | REDCap {v} |\n"));
    }
    h.push_str(&format!("| Source | {} |\n", public_sources(area, m)));
    if let Some(notes) = &m.notes {
        h.push('\n');
        h.push_str(notes.trim());
        h.push('\n');
    }
    h
}

/// The body of one method's module.
pub fn method_module(
    area: &AreaSpec,
    m: &MethodSpec,
    enums: &BTreeMap<String, EnumSpec>,
    paths: &Paths,
) -> TokenStream {
    let core = &paths.core;
    // A parameter whose type does not parse (validation reports it first) is left out, with a
    // compile error that names it should the module be emitted all the same.
    let params: Vec<Resolved<'_>> = m
        .params
        .iter()
        .filter_map(|p| p.ty.parsed.clone().ok().map(|ty| Resolved { spec: p, ty, field: ident(&rust_name(p)) }))
        .collect();
    let invalid: Vec<TokenStream> = m
        .params
        .iter()
        .filter_map(|p| {
            let msg = format!("spec: parameter `{}`: {}", p.name, p.ty.parsed.as_ref().err()?);
            Some(quote!(::core::compile_error!(#msg);))
        })
        .collect();

    // Static facts.
    let id = format!("{}.{}", area.area, m.name);
    let content = &m.content;
    let action = match &m.action {
        Some(a) => quote!(::core::option::Option::Some(#a)),
        None => quote!(::core::option::Option::None),
    };
    let (mut output, mut decoder, kind) = response_type(&m.response, core);
    if let (Some(row), ResponseKind::Data) = (&m.row, &m.response) {
        let row = ident(row);
        (output, decoder) = if m.single {
            (quote!(#core::Single<super::super::rows::#row>), ident("single"))
        } else {
            (quote!(#core::Rows<super::super::rows::#row>), ident("rows"))
        };
    }
    let idempotent = m.idempotent;
    let summary = &m.summary;
    let token = ident(match m.token.as_str() {
        "super" => "Super",
        "either" => "Either",
        _ => "Project",
    });
    let streaming = m.streaming.then(|| quote!(.streaming()));
    let since = m.since.as_ref().map(|v| quote!(.since(#v)));
    let rights = &m.rights;
    let fixed = m.fixed.iter().map(|(k, v)| quote!((#k, #v)));
    let param_infos = params.iter().map(|p| {
        let name = &p.spec.name;
        let vt = match &p.ty.scalar {
            Scalar::String => quote!(String),
            Scalar::Int => quote!(Int),
            Scalar::Timestamp => quote!(Timestamp),
            Scalar::Minute => quote!(Minute),
            Scalar::File => quote!(File),
            Scalar::Enum(n) => quote!(Enum(#n)),
            Scalar::Bool => {
                let w = ident(match p.spec.wire.as_deref() {
                    Some("one_zero") => "OneZero",
                    Some("presence") => "Presence",
                    _ => "TrueFalse",
                });
                quote!(Bool(#core::BoolWire::#w))
            }
        };
        let mut chain = quote!(#core::ParamInfo::new(#name, #core::ValueType::#vt));
        if p.ty.list {
            let shape = ident(if p.spec.encoding.as_deref() == Some("comma") { "Comma" } else { "Indexed" });
            chain = quote!(#chain.shape(#core::Shape::#shape));
        }
        if p.spec.required {
            chain = quote!(#chain.required());
        }
        if p.spec.always {
            chain = quote!(#chain.always());
        }
        if !p.spec.allowed.is_empty() {
            let a = &p.spec.allowed;
            chain = quote!(#chain.allowed(&[#(#a),*]));
        }
        if let Some(d) = &p.spec.default {
            chain = quote!(#chain.server_default(#d));
        }
        let doc = &p.spec.doc;
        quote!(#chain.doc(#doc))
    });

    // The request struct.
    let fields = params.iter().map(|p| {
        let mut doc = format!("`{}`: {}", p.spec.name, p.spec.doc);
        if let Some(d) = &p.spec.default {
            doc.push_str(&format!(" REDCap's default: `{d}`."));
        }
        if let Some(v) = &p.spec.since {
            doc.push_str(&format!(" Since REDCap {v}."));
        }
        let f = &p.field;
        let t = p.field_type(core);
        let doc = doc_lines(&doc);
        quote!(#doc pub #f: #t,)
    });

    let required: Vec<&Resolved<'_>> = params.iter().filter(|p| p.spec.required).collect();
    let new_args = required.iter().map(|p| {
        let f = &p.field;
        let s = p.scalar_type(core);
        match (&p.ty.scalar, p.ty.list) {
            (Scalar::String | Scalar::Timestamp | Scalar::Minute, false) => {
                quote!(#f: impl ::core::convert::Into<::std::string::String>)
            }
            (Scalar::String | Scalar::Timestamp | Scalar::Minute, true) => {
                quote!(#f: impl ::core::iter::IntoIterator<Item = impl ::core::convert::Into<::std::string::String>>)
            }
            (_, true) => quote!(#f: impl ::core::iter::IntoIterator<Item = #s>),
            (_, false) => quote!(#f: #s),
        }
    });
    let new_inits = params.iter().map(|p| {
        let f = &p.field;
        let string_like = matches!(p.ty.scalar, Scalar::String | Scalar::Timestamp | Scalar::Minute);
        if p.spec.required {
            return match (string_like, p.ty.list) {
                (true, false) => quote!(#f: #f.into(),),
                (true, true) => quote!(#f: #f.into_iter().map(::core::convert::Into::into).collect(),),
                (false, true) => quote!(#f: #f.into_iter().collect(),),
                (false, false) => quote!(#f,),
            };
        }
        match &p.spec.client_default {
            Some(v) => {
                let e = value_expr(&p.ty, v, core, enums);
                if p.plain() { quote!(#f: #e,) } else { quote!(#f: ::core::option::Option::Some(#e),) }
            }
            None if p.plain() => quote!(#f: ::core::default::Default::default(),),
            None => quote!(#f: ::core::option::Option::None,),
        }
    });
    let defaults: Vec<String> = params
        .iter()
        .filter_map(|p| {
            p.spec.client_default.as_ref().map(|v| format!("`{}` = `{}`", p.spec.name, v.to_string().trim_matches('"')))
        })
        .collect();
    let new_doc = doc_lines(&if defaults.is_empty() {
        "Creates a new `Request` with the given required parameters.".to_owned()
    } else {
        format!("Creates a new `Request` with the given required parameters and {}.", defaults.join(", "))
    });
    let setters = params.iter().filter(|p| !p.spec.required).map(|p| {
        let f = &p.field;
        let s = p.scalar_type(core);
        let doc = doc_lines(&format!("Sets `{}`: {}", p.spec.name, p.spec.doc));
        let string_like = matches!(p.ty.scalar, Scalar::String | Scalar::Timestamp | Scalar::Minute);
        let (arg, assign) = match (string_like, p.ty.list, p.plain()) {
            (true, true, _) => (
                quote!(value: impl ::core::iter::IntoIterator<Item = impl ::core::convert::Into<::std::string::String>>),
                quote!(value.into_iter().map(::core::convert::Into::into).collect()),
            ),
            (false, true, _) => (quote!(value: impl ::core::iter::IntoIterator<Item = #s>), quote!(value.into_iter().collect())),
            (true, false, false) => (
                quote!(value: impl ::core::convert::Into<::std::string::String>),
                quote!(::core::option::Option::Some(value.into())),
            ),
            (false, false, false) => (quote!(value: #s), quote!(::core::option::Option::Some(value))),
            (_, false, true) => (quote!(value: #s), quote!(value)),
        };
        quote! {
            #doc
            pub fn #f(mut self, #arg) -> Self {
                self.#f = #assign;
                self
            }
        }
    });
    let encodes = params.iter().enumerate().map(|(i, p)| {
        let f = &p.field;
        quote!(form.put(&PARAMS[#i], #core::ToParam::to_param(&self.#f))?;)
    });

    let examples = m.examples.iter().map(|ex| {
        let name = &ex.name;
        let args = required.iter().map(|p| match ex.params.get(&p.spec.name).or(p.spec.client_default.as_ref()) {
            Some(v) => value_expr(&p.ty, v, core, enums),
            None => quote!(compile_error!("validated: required example value")),
        });
        let sets = params.iter().filter(|p| !p.spec.required).filter_map(|p| {
            let v = ex.params.get(&p.spec.name)?;
            let f = &p.field;
            let e = value_expr(&p.ty, v, core, enums);
            Some(if p.plain() {
                quote!(request.#f = #e;)
            } else {
                quote!(request.#f = ::core::option::Option::Some(#e);)
            })
        });
        quote! {
            #[allow(unused_mut)]
            let mut request = Request::new(#(#args),*);
            #(#sets)*
            out.push((#name, request));
        }
    });

    let from_rows = import_rows(m, &params, core);
    let default_impl = required.is_empty().then(|| {
        quote! {
            impl ::core::default::Default for Request {
                fn default() -> Self {
                    Request::new()
                }
            }
        }
    });

    // A method without parameters does not touch the form.
    let unused_form = params.is_empty().then(|| quote!(let _ = form;));
    let head = inner_doc_lines(&header(area, m));
    let struct_doc = doc_lines(&format!("Parameters of *{}*.", m.summary.trim_end_matches('.')));
    let param_list = if params.is_empty() { quote!(&[]) } else { quote!(PARAMS) };
    quote! {
        #head
        #(#invalid)*

        /// Static facts about this method.
        pub static INFO: #core::MethodInfo = #core::MethodInfo::new(
            #id, #content, #action, #core::ResponseKind::#kind, #idempotent,
        )
        .summary(#summary)
        .token(#core::TokenRequirement::#token)
        #streaming
        .params(#param_list)
        .fixed(&[#(#fixed),*])
        .rights(&[#(#rights),*])
        #since;

        const PARAMS: &[#core::ParamInfo] = &[#(#param_infos),*];

        #struct_doc
        #[derive(Clone, Debug, PartialEq)]
        #[non_exhaustive]
        pub struct Request {
            #(#fields)*
        }

        impl Request {
            #new_doc
            pub fn new(#(#new_args),*) -> Self {
                Request { #(#new_inits)* }
            }

            #(#setters)*

            #from_rows
        }

        #default_impl

        impl #core::Method for Request {
            const INFO: &'static #core::MethodInfo = &INFO;
            type Output = #output;

            fn encode(&self, form: &mut #core::Form) -> ::core::result::Result<(), #core::EncodeError> {
                #(#encodes)*
                #unused_form
                ::core::result::Result::Ok(())
            }

            fn decode(
                ctx: &#core::DecodeContext,
                response: #core::__private::http::Response<#core::Bytes>,
            ) -> ::core::result::Result<Self::Output, #core::DecodeError> {
                #core::decode::#decoder(ctx, response)
            }
        }

        /// The spec's example calls, by name (each is a snapshot test of the encoded request).
        #[doc(hidden)]
        pub fn examples() -> ::std::vec::Vec<(&'static str, Request)> {
            let mut out = ::std::vec::Vec::new();
            #(#examples)*
            out
        }
    }
}

/// `from_rows` constructors of an import whose `data` has a `[[row]]` shape (and no other required
/// parameter).
fn import_rows(m: &MethodSpec, params: &[Resolved<'_>], core: &syn::Path) -> TokenStream {
    let Some(row) = &m.row else { return TokenStream::new() };
    let required: Vec<&str> = params.iter().filter(|p| p.spec.required).map(|p| p.spec.name.as_str()).collect();
    let has_format = params.iter().any(|p| p.spec.name == "format" && !p.spec.required);
    if required != ["data"] || !has_format {
        return TokenStream::new();
    }
    let row = ident(row);
    if m.single {
        return quote! {
            /// A request whose `data` is `row`, sent as JSON.
            pub fn from_row(row: &super::super::rows::#row) -> ::core::result::Result<Self, #core::EncodeError> {
                Self::from_row_as(#core::Format::Json, row)
            }

            /// A request whose `data` is `row`, encoded in `format` (which is also sent as `format`).
            pub fn from_row_as(
                format: #core::Format,
                row: &super::super::rows::#row,
            ) -> ::core::result::Result<Self, #core::EncodeError> {
                let mut request = Request::new(#core::rows::encode_one(format, row)?);
                request.format = ::core::option::Option::Some(format);
                ::core::result::Result::Ok(request)
            }
        };
    }
    quote! {
        /// A request whose `data` is `rows`, sent as JSON.
        pub fn from_rows(rows: &[super::super::rows::#row]) -> ::core::result::Result<Self, #core::EncodeError> {
            Self::from_rows_as(#core::Format::Json, rows)
        }

        /// A request whose `data` is `rows`, encoded in `format` (which is also sent as `format`).
        pub fn from_rows_as(
            format: #core::Format,
            rows: &[super::super::rows::#row],
        ) -> ::core::result::Result<Self, #core::EncodeError> {
            let mut request = Request::new(#core::rows::encode(format, super::super::rows::#row::XML_ROOT, rows)?);
            request.format = ::core::option::Option::Some(format);
            ::core::result::Result::Ok(request)
        }
    }
}

/// `pub mod` items and registry entries for a set of areas.
fn registry(areas: &[AreaSpec], paths: &Paths) -> TokenStream {
    let core = &paths.core;
    let infos = areas.iter().flat_map(|a| {
        let area = ident(&a.area);
        a.methods.iter().map(move |m| {
            let method = ident(&m.name);
            quote!(&#area::#method::INFO)
        })
    });
    let examples = areas.iter().flat_map(|a| {
        let area = ident(&a.area);
        a.methods.iter().map(move |m| {
            let method = ident(&m.name);
            quote! {
                for (name, request) in #area::#method::examples() {
                    out.push((
                        #area::#method::INFO.id,
                        name,
                        #core::prepare_with_boundary(&request, url, token, boundary),
                    ));
                }
            }
        })
    });
    quote! {
        /// Every method, in spec order.
        pub static METHODS: &[&#core::MethodInfo] = &[#(#infos),*];

        /// A method by id (`area.name`).
        pub fn method(id: &str) -> ::core::option::Option<&'static #core::MethodInfo> {
            METHODS.iter().copied().find(|m| m.id == id)
        }

        /// Every example call of the spec as `(method id, example name, prepared request)` (test
        /// scaffolding for the snapshot tests).
        #[doc(hidden)]
        pub fn prepare_examples(
            url: &#core::ApiUrl,
            token: &#core::Token,
            boundary: &str,
        ) -> ::std::vec::Vec<(&'static str, &'static str, ::core::result::Result<#core::PreparedRequest, #core::EncodeError>)> {
            let mut out = ::std::vec::Vec::new();
            #(#examples)*
            out
        }
    }
}

/// Everything for a set of areas as inline modules (the proc-macro's output).
pub fn inline_modules(areas: &[AreaSpec], enums: &BTreeMap<String, EnumSpec>, paths: &Paths) -> TokenStream {
    let mods = areas.iter().map(|a| {
        let area = ident(&a.area);
        let doc = format!(" {}", a.title);
        let methods = a.methods.iter().map(|m| {
            let name = ident(&m.name);
            let body = method_module(a, m, enums, paths);
            quote!(pub mod #name { #body })
        });
        quote!(#[doc = #doc] pub mod #area { #(#methods)* })
    });
    let reg = registry(areas, paths);
    let rows = crate::emit_rows::has_rows(areas).then(|| {
        let items = crate::emit_rows::rows_items(areas, paths);
        quote!(#[doc = " Typed rows of fixed-shape answers and imports."] pub mod rows { #items })
    });
    quote!(#(#mods)* #rows #reg)
}

const ROWS_DOC: &str = "Typed rows of REDCap's fixed-shape answers and imports, one struct per shape declared in the
spec's `[[row]]` tables.

Each struct reads json, csv and xml alike: JSON sends numbers where CSV and XML send text, flags
come as `0`/`1` or `y`/blank, and blank means absent. Columns the struct does not know are kept in
its `extra` map (and sent back on import), so a newer REDCap's columns are neither lost nor an
error. Methods that export such rows return [`redcap_core::Rows`] (the typed rows and the raw body);
imports of such rows offer `Request::from_rows`.";

fn stamp(source: &str) -> String {
    format!("// @generated by `cargo xtask codegen` from {source}. Do not edit by hand.\n\n")
}

/// A generated file: the stamp naming `source`, then the code.
pub(crate) fn render(source: &str, tokens: TokenStream) -> String {
    format!("{}{}", stamp(source), pretty(tokens))
}

fn pretty(tokens: TokenStream) -> String {
    // Tokens that do not parse as a file are a generator bug; written as they are, the compiler
    // points at them (the generator does not panic).
    match syn::parse2::<syn::File>(tokens.clone()) {
        Ok(file) => prettyplease::unparse(&file),
        Err(_) => tokens.to_string(),
    }
}

/// All generated files, relative to the output directory, with their contents.
pub fn files(spec: &crate::spec::Spec, spec_dir: &str, paths: &Paths) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for a in &spec.areas {
        for m in &a.methods {
            let body = method_module(a, m, &spec.enums, paths);
            out.insert(format!("{}/{}.rs", a.area, m.name), format!("{}{}", stamp(&a.file), pretty(body)));
        }
        let mods = a.methods.iter().map(|m| {
            let name = ident(&m.name);
            let doc = format!(" {}", m.summary);
            quote!(#[doc = #doc] pub mod #name;)
        });
        let title = format!(" {}: {} method(s).", a.title, a.methods.len());
        out.insert(
            format!("{}/mod.rs", a.area),
            format!("{}{}", stamp(&a.file), pretty(quote!(#![doc = #title] #(#mods)*))),
        );
    }
    let mut mods: Vec<TokenStream> = spec
        .areas
        .iter()
        .map(|a| {
            let area = format_ident!("{}", a.area);
            let doc = format!(" {}", a.title);
            quote!(#[doc = #doc] pub mod #area;)
        })
        .collect();
    if crate::emit_rows::has_rows(&spec.areas) {
        let items = crate::emit_rows::rows_items(&spec.areas, paths);
        let doc = inner_doc_lines(ROWS_DOC);
        out.insert(
            "rows.rs".to_owned(),
            format!("{}{}", stamp(&format!("the files in {spec_dir}/")), pretty(quote!(#doc #items))),
        );
        mods.push(quote!(
            #[doc = " Typed rows of fixed-shape answers and imports."]
            pub mod rows;
        ));
    }
    let reg = registry(&spec.areas, paths);
    let count = spec.areas.iter().map(|a| a.methods.len()).sum::<usize>();
    let doc = format!(" Request types for the {count} methods of the REDCap API, one module per method.");
    out.insert(
        "mod.rs".to_owned(),
        format!("{}{}", stamp(&format!("the files in {spec_dir}/")), pretty(quote!(#![doc = #doc] #(#mods)* #reg))),
    );
    out
}
