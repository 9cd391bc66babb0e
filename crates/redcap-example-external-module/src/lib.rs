//! An External Module's API as typed requests, from a TOML file in the spec format.
//!
//! `redcap_macros::methods!` expands `custom_log_entry.toml` into the module
//! `custom_log_entry::log` with a `Request` that implements [`redcap_core::Method`], so the same
//! clients that call REDCap's own methods call this one:
//!
//! ```
//! use redcap_example_external_module::custom_log_entry::log;
//! use redcap_core::{ApiUrl, Token};
//!
//! let url = ApiUrl::parse("https://redcap.example.edu/api/").unwrap();
//! let token = Token::new("0123456789ABCDEF0123456789ABCDEF").unwrap();
//! let request = log::Request::new("Consent re-checked by phone").record("1001");
//! let prepared = redcap_core::prepare(&request, &url, &token).unwrap();
//! assert!(prepared.render().contains("prefix=custom_log_entry"));
//! ```

redcap_macros::methods!("custom_log_entry.toml");

#[cfg(test)]
mod tests {
    use redcap_core::{ApiUrl, Body, Method, Token};

    use super::custom_log_entry::log;

    fn prepared(request: &log::Request) -> redcap_core::PreparedRequest {
        let url = ApiUrl::parse("https://redcap.example.edu/api/").unwrap();
        let token = Token::new("0123456789ABCDEF0123456789ABCDEF").unwrap();
        redcap_core::prepare(request, &url, &token).unwrap()
    }

    #[test]
    fn encodes_as_an_external_module_call() {
        let p = prepared(&log::Request::new("Consent re-checked by phone").record("1001"));
        let Body::Form(body) = p.body() else { panic!("expected a form body") };
        assert_eq!(
            std::str::from_utf8(body).unwrap(),
            "token=0123456789ABCDEF0123456789ABCDEF&content=externalModule&action=log&prefix=custom_log_entry\
             &comment=Consent+re-checked+by+phone&record=1001&returnFormat=json"
        );
        assert_eq!(p.content_type(), "application/x-www-form-urlencoded");
    }

    #[test]
    fn optional_record_is_omitted_and_facts_come_from_the_toml() {
        let p = prepared(&log::Request::new("note"));
        assert!(!p.render().contains("record="));
        assert_eq!(log::INFO.id, "custom_log_entry.log");
        assert!(!<log::Request as Method>::INFO.idempotent, "a log write is never retried");
        assert_eq!(super::METHODS.len(), 1);
        assert_eq!(
            super::prepare_examples(p.url(), &Token::new("0123456789ABCDEF0123456789ABCDEF").unwrap(), "B").len(),
            1
        );
    }
}
