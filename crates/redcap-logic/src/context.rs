//! Where evaluation gets its data.

use std::collections::HashMap;

use crate::{Date, FieldRef};

/// The record (and project settings) an expression is evaluated against.
///
/// Only [`value`](Context::value) is required. Implement [`today`](Context::today) to control
/// what `'today'` means (the default is the system clock in UTC; REDCap uses the server's local
/// date) and to make date logic deterministic in tests, and
/// [`missing_codes`](Context::missing_codes) for projects with missing-data codes.
pub trait Context {
    /// The stored value of `field` for the record being evaluated.
    ///
    /// Return `None` or `Some("")` for no value: REDCap does not distinguish an absent value
    /// from an empty one, and neither does evaluation (both are [`Value::Blank`]).
    ///
    /// `field.event` is the unique event name of an `[event][field]` reference, or `None` for
    /// `[field]`, meaning the event being evaluated (or a classic project).
    ///
    /// For a checkbox option `[field(code)]`, `field.checkbox_code` is set and the answer
    /// should be `"1"` when the option is checked and `"0"` otherwise; `None` or `""` are read
    /// as `"0"`, because REDCap checkbox options are never blank.
    ///
    /// [`Value::Blank`]: crate::Value::Blank
    fn value(&self, field: &FieldRef) -> Option<String>;

    /// The date `'today'` stands for in `datediff` and the date functions.
    fn today(&self) -> Date {
        Date::today_utc()
    }

    /// The project's missing-data codes (e.g. `NA`, `UNK`), which `isblankormissingcode()`
    /// treats like a blank. Elsewhere a missing-data code is an ordinary value, as in REDCap.
    fn missing_codes(&self) -> &[String] {
        &[]
    }
}

/// A [`Context`] backed by a map of values, for tests, tools and small emulators.
///
/// Values are keyed by (event, [`FieldRef::column_name`]): a checkbox option `[race(2)]` reads
/// the export column `race___2`. An `[event][field]` reference reads only the value stored for
/// that event, and `[field]` only the value stored without an event.
///
/// ```
/// use redcap_logic::{MapContext, parse};
///
/// let ctx = MapContext::new()
///     .with("race___2", "1")
///     .with_event("baseline_arm_1", "weight", "62")
///     .with_missing_codes(["NA"]);
/// assert!(parse("[race(2)] = '1' and [baseline_arm_1][weight] >= 61")?.is_true(&ctx)?);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, Default)]
pub struct MapContext {
    values: HashMap<(Option<String>, String), String>,
    today: Option<Date>,
    missing_codes: Vec<String>,
}

impl MapContext {
    /// An empty context: every field is blank, `'today'` is the UTC system date, and there
    /// are no missing-data codes.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets the value of `field` (an export column name such as `age` or `race___2`) outside
    /// any event.
    #[must_use]
    pub fn with(mut self, field: impl Into<String>, value: impl Into<String>) -> Self {
        self.values.insert((None, field.into()), value.into());
        self
    }

    /// Sets the value of `field` in the event with unique name `event`.
    #[must_use]
    pub fn with_event(mut self, event: impl Into<String>, field: impl Into<String>, value: impl Into<String>) -> Self {
        self.values.insert((Some(event.into()), field.into()), value.into());
        self
    }

    /// Fixes the date `'today'` stands for.
    #[must_use]
    pub fn with_today(mut self, today: Date) -> Self {
        self.today = Some(today);
        self
    }

    /// Sets the project's missing-data codes.
    #[must_use]
    pub fn with_missing_codes<I>(mut self, codes: I) -> Self
    where
        I: IntoIterator,
        I::Item: Into<String>,
    {
        self.missing_codes = codes.into_iter().map(Into::into).collect();
        self
    }
}

impl Context for MapContext {
    fn value(&self, field: &FieldRef) -> Option<String> {
        self.values.get(&(field.event.clone(), field.column_name())).cloned()
    }

    fn today(&self) -> Date {
        self.today.unwrap_or_else(Date::today_utc)
    }

    fn missing_codes(&self) -> &[String] {
        &self.missing_codes
    }
}
