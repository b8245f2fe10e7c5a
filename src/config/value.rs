//! How one value is parsed and printed, and the key tables built from that.
//!
//! Every config section (`BrokerConfig`, `MessageStoreConfig`, ...) is declared once with
//! [`config_section!`], which generates the struct, its defaults and a static table of
//! [`Field`]s: `(key, setter, printer)`. Loading, unknown-key detection, `-p` and `-m` printing
//! are all loops over those tables, so a key cannot be parsed without also being printed.
//!
//! Value rules, stricter than upstream (which swallows every parse error and keeps the default):
//! - integers are plain decimal with an optional sign, and must fit Java's type (`int` values
//!   are at most 2147483647); sizes, counts and intervals are unsigned, so `-1` is an error;
//! - booleans are `true` / `false` in any letter case; anything else (`yes`, `1`) is an error,
//!   where Java's `Boolean.parseBoolean` would silently read `false`;
//! - enums use upstream's exact, case-sensitive spelling;
//! - numeric, boolean and enum values have surrounding blanks trimmed (with a warning: upstream
//!   would ignore `listenPort=10911 ` and keep the default; we do what the operator meant);
//! - strings are kept verbatim, as 4.x does (trailing blanks only earn a warning).

use std::path::PathBuf;

/// What happened to the raw text of a value besides parsing; the loader turns it into a warning.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Note {
    Clean,
    /// Surrounding blanks were removed before parsing.
    Trimmed,
    /// A string value ends in blanks, kept verbatim as upstream keeps them.
    KeptTrailingBlanks,
}

/// A type that a properties value can be parsed into and printed from.
pub(crate) trait ConfigValue: Sized {
    /// Whether surrounding blanks are trimmed before parsing (see the module doc).
    const TRIMS: bool = true;
    /// Parses the (already trimmed, if `TRIMS`) text; the error is the reason, e.g.
    /// `expected true or false`.
    fn parse_value(text: &str) -> Result<Self, String>;
    /// The text `-p` prints (upstream prints `null` fields as the empty string).
    fn render(&self) -> String;
}

/// Java `int` upper bound: sizes above it could not be configured upstream either.
pub(crate) const JAVA_INT_MAX: i64 = i32::MAX as i64;

/// Parses a plain decimal integer (optional sign, ASCII digits) within `min..=max`.
pub(crate) fn parse_int(text: &str, min: i64, max: i64) -> Result<i64, String> {
    let n: i64 = match text.parse() {
        Ok(n) => n,
        Err(_) if is_signed_digits(text) => {
            return Err(format!("expected an integer in {min}..={max}"));
        }
        Err(_) => return Err("expected a decimal integer".to_owned()),
    };
    if n < 0 && min == 0 {
        return Err("expected a non-negative integer".to_owned());
    }
    if n < min || n > max {
        return Err(format!("expected an integer in {min}..={max}"));
    }
    Ok(n)
}

fn is_signed_digits(text: &str) -> bool {
    let digits = text.strip_prefix(['+', '-']).unwrap_or(text);
    !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit())
}

impl ConfigValue for bool {
    fn parse_value(text: &str) -> Result<Self, String> {
        if text.eq_ignore_ascii_case("true") {
            Ok(true)
        } else if text.eq_ignore_ascii_case("false") {
            Ok(false)
        } else {
            Err("expected true or false".to_owned())
        }
    }
    fn render(&self) -> String {
        self.to_string()
    }
}

impl ConfigValue for u16 {
    fn parse_value(text: &str) -> Result<Self, String> {
        let n = parse_int(text, 0, i64::from(u16::MAX))?;
        u16::try_from(n).map_err(|_| format!("expected an integer in 0..={}", u16::MAX))
    }
    fn render(&self) -> String {
        self.to_string()
    }
}

/// A Java `int` that must not be negative.
impl ConfigValue for u32 {
    fn parse_value(text: &str) -> Result<Self, String> {
        let n = parse_int(text, 0, JAVA_INT_MAX)?;
        u32::try_from(n).map_err(|_| format!("expected an integer in 0..={JAVA_INT_MAX}"))
    }
    fn render(&self) -> String {
        self.to_string()
    }
}

/// A Java `long` that must not be negative.
impl ConfigValue for u64 {
    fn parse_value(text: &str) -> Result<Self, String> {
        let n = parse_int(text, 0, i64::MAX)?;
        u64::try_from(n).map_err(|_| format!("expected an integer in 0..={}", i64::MAX))
    }
    fn render(&self) -> String {
        self.to_string()
    }
}

/// A Java `long` that may be negative (`brokerId`).
impl ConfigValue for i64 {
    fn parse_value(text: &str) -> Result<Self, String> {
        parse_int(text, i64::MIN, i64::MAX)
    }
    fn render(&self) -> String {
        self.to_string()
    }
}

impl ConfigValue for String {
    const TRIMS: bool = false;
    fn parse_value(text: &str) -> Result<Self, String> {
        Ok(text.to_owned())
    }
    fn render(&self) -> String {
        self.clone()
    }
}

impl ConfigValue for PathBuf {
    const TRIMS: bool = false;
    fn parse_value(text: &str) -> Result<Self, String> {
        if text.is_empty() {
            return Err("expected a path".to_owned());
        }
        Ok(PathBuf::from(text))
    }
    fn render(&self) -> String {
        self.display().to_string()
    }
}

/// Upstream's nullable fields: an empty value means "not set", printed as the empty string.
impl<T: ConfigValue> ConfigValue for Option<T> {
    const TRIMS: bool = T::TRIMS;
    fn parse_value(text: &str) -> Result<Self, String> {
        if text.is_empty() {
            Ok(None)
        } else {
            T::parse_value(text).map(Some)
        }
    }
    fn render(&self) -> String {
        self.as_ref().map(T::render).unwrap_or_default()
    }
}

// ---- Parsers for values with a narrower domain than their Rust type ------------------------

/// A TCP port, 1..=65535.
pub(crate) fn parse_port(text: &str) -> Result<u16, String> {
    match parse_int(text, 1, 65535) {
        Ok(n) => u16::try_from(n).map_err(|_| "expected a port in 1..=65535".to_owned()),
        Err(_) => Err("expected a port in 1..=65535".to_owned()),
    }
}

/// A Java `int` that must be at least 1 (file sizes).
pub(crate) fn parse_positive(text: &str) -> Result<u32, String> {
    match parse_int(text, 1, JAVA_INT_MAX) {
        Ok(n) => u32::try_from(n).map_err(|e| e.to_string()),
        Err(_) => Err(format!(
            "expected a positive integer no larger than {JAVA_INT_MAX}"
        )),
    }
}

/// A percentage, 0..=100.
pub(crate) fn parse_percent(text: &str) -> Result<u32, String> {
    match parse_int(text, 0, 100) {
        Ok(n) => u32::try_from(n).map_err(|e| e.to_string()),
        Err(_) => Err("expected a percentage in 0..=100".to_owned()),
    }
}

/// Permission bits (2 write, 4 read, 1 inherit): 0..=7.
pub(crate) fn parse_permission(text: &str) -> Result<u32, String> {
    match parse_int(text, 0, 7) {
        Ok(n) => u32::try_from(n).map_err(|e| e.to_string()),
        Err(_) => Err("expected permission bits in 0..=7 (2 write, 4 read, 6 both)".to_owned()),
    }
}

/// `deleteWhen`: hours of the day, `;`-separated (`04`, `04;16`).
pub(crate) fn parse_hours(text: &str) -> Result<String, String> {
    let ok = !text.is_empty()
        && text
            .split(';')
            .all(|h| parse_int(h, 0, 23).is_ok() && !h.starts_with(['+', '-']));
    if ok {
        Ok(text.to_owned())
    } else {
        Err("expected hours of the day 0..=23 separated by ';', e.g. 04 or 04;16".to_owned())
    }
}

/// `messageDelayLevel`: blank-separated durations, each a number and a unit `s`, `m`, `h`, `d`.
pub(crate) fn parse_delay_levels(text: &str) -> Result<String, String> {
    let level_ok = |level: &str| {
        let Some(number) = level.strip_suffix(['s', 'm', 'h', 'd']) else {
            return false;
        };
        !number.is_empty() && number.bytes().all(|b| b.is_ascii_digit())
    };
    let mut levels = text.split_whitespace().peekable();
    if levels.peek().is_some() && levels.all(level_ok) {
        Ok(text.to_owned())
    } else {
        Err("expected durations like \"1s 5s 10s 30s 1m 2h 1d\"".to_owned())
    }
}

/// An advertised host (`brokerIP1`): an address or name, no blanks, not empty.
pub(crate) fn parse_host(text: &str) -> Result<String, String> {
    if text.is_empty() || text.contains(char::is_whitespace) || text.contains([':', ';']) {
        return Err("expected an IP address or host name".to_owned());
    }
    Ok(text.to_owned())
}

/// One `host:port`, split at the last `:` as upstream's `string2SocketAddress` does.
pub(crate) fn check_host_port(entry: &str) -> Result<(), String> {
    let bad = || format!("{entry:?} is not host:port");
    let (host, port) = entry.rsplit_once(':').ok_or_else(bad)?;
    if host.is_empty() || host.contains(char::is_whitespace) {
        return Err(bad());
    }
    parse_port(port).map_err(|_| format!("{entry:?} is not host:port with a port in 1..=65535"))?;
    Ok(())
}

/// `namesrvAddr`: `host:port` entries separated by `;` (blanks around entries are ignored).
pub(crate) fn check_addr_list(text: &str) -> Result<(), String> {
    let mut count = 0;
    for entry in split_addr_list(text) {
        check_host_port(entry)?;
        count += 1;
    }
    if count == 0 {
        return Err("expected host:port[;host:port...]".to_owned());
    }
    Ok(())
}

/// The non-empty, trimmed entries of a `;`-separated address list.
pub(crate) fn split_addr_list(text: &str) -> impl Iterator<Item = &str> {
    text.split(';').map(str::trim).filter(|s| !s.is_empty())
}

/// `namesrvAddr` as a field parser: validated, stored verbatim.
pub(crate) fn parse_addr_list(text: &str) -> Result<Option<String>, String> {
    check_addr_list(text)?;
    Ok(Some(text.to_owned()))
}

/// `haMasterAddress`: empty (unset) or one `host:port`.
pub(crate) fn parse_optional_host_port(text: &str) -> Result<Option<String>, String> {
    if text.is_empty() {
        return Ok(None);
    }
    check_host_port(text)?;
    Ok(Some(text.to_owned()))
}

// ---- Tables ---------------------------------------------------------------------------------

/// One key of one config section. Built only by [`config_section!`].
pub(crate) struct Field<C> {
    /// The properties key, exactly as upstream spells it.
    pub key: &'static str,
    /// Whether the raw value is trimmed before `apply` (see [`ConfigValue::TRIMS`]).
    pub trims: bool,
    /// Parses the text and stores it; the error is the reason.
    pub apply: fn(&mut C, &str) -> Result<(), String>,
    /// The current value as `-p` prints it.
    pub show: fn(&C) -> String,
}

/// Applies `raw` to the field named `key` of `target`, if the table has it.
/// Returns `Ok(None)` for a key the table does not know.
pub(crate) fn apply_in<C>(
    table: &[Field<C>],
    target: &mut C,
    key: &str,
    raw: &str,
) -> Result<Option<Note>, String> {
    let Some(field) = table.iter().find(|f| f.key == key) else {
        return Ok(None);
    };
    let blank = |c: char| c == ' ' || c == '\t' || c == '\u{0C}';
    let (text, note) = if field.trims {
        let text = raw.trim_matches(blank);
        let note = if text.len() == raw.len() {
            Note::Clean
        } else {
            Note::Trimmed
        };
        (text, note)
    } else if raw.ends_with(blank) {
        (raw, Note::KeptTrailingBlanks)
    } else {
        (raw, Note::Clean)
    };
    (field.apply)(target, text)?;
    Ok(Some(note))
}

/// Appends `key=value` lines for the fields of `table` accepted by `filter`.
pub(crate) fn render_table<C>(
    out: &mut String,
    table: &[Field<C>],
    target: &C,
    filter: impl Fn(&str) -> bool,
) {
    for field in table.iter().filter(|f| filter(f.key)) {
        out.push_str(field.key);
        out.push('=');
        out.push_str(&(field.show)(target));
        out.push('\n');
    }
}

/// Declares a config section: the struct (one `pub` field per key), `with_defaults(env)` and a
/// static key table. Each line reads
/// `"javaKey" => rust_field: Type = default_expr [, parse = parser_fn] [, trim = bool];`
/// where `parser_fn: fn(&str) -> Result<Type, String>` narrows the type's own parser, and
/// default expressions may use the environment binding named in the header.
/// An optional `nested { field: Type, }` block adds sub-sections built with their own
/// `with_defaults`.
macro_rules! config_section {
    (
        $(#[$smeta:meta])*
        pub struct $name:ident ($env:ident) in $table:ident {
            $(
                $(#[$fmeta:meta])*
                $key:literal => $field:ident : $ty:ty = $default:expr
                    $(, parse = $parser:path)? $(, trim = $trim:expr)? ;
            )*
        }
        $( nested { $( $(#[$nmeta:meta])* $nfield:ident : $nty:ty ),* $(,)? } )?
    ) => {
        $(#[$smeta])*
        #[derive(Debug, Clone, PartialEq, Eq)]
        pub struct $name {
            $( $(#[$fmeta])* pub $field: $ty, )*
            $( $( $(#[$nmeta])* pub $nfield: $nty, )* )?
        }

        impl $name {
            /// Upstream's defaults, with host-dependent ones taken from `env`.
            pub(crate) fn with_defaults($env: &$crate::config::HostEnv) -> Self {
                let _ = $env;
                Self {
                    $( $field: $default, )*
                    $( $( $nfield: <$nty>::with_defaults($env), )* )?
                }
            }
        }

        pub(crate) static $table: &[$crate::config::value::Field<$name>] = &[
            $( $crate::config::value::Field {
                key: $key,
                trims: config_section!(@trim $ty $(, $trim)?),
                apply: |target: &mut $name, text: &str| {
                    target.$field = config_section!(@parse text $(, $parser)?)?;
                    Ok(())
                },
                show: |target: &$name| {
                    $crate::config::value::ConfigValue::render(&target.$field)
                },
            }, )*
        ];
    };
    (@trim $ty:ty) => { <$ty as $crate::config::value::ConfigValue>::TRIMS };
    (@trim $ty:ty, $trim:expr) => { $trim };
    (@parse $text:ident) => { $crate::config::value::ConfigValue::parse_value($text) };
    (@parse $text:ident, $parser:path) => { $parser($text) };
}
pub(crate) use config_section;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integers_are_plain_decimal() {
        assert_eq!(parse_int("42", 0, 100), Ok(42));
        assert_eq!(parse_int("+42", 0, 100), Ok(42));
        assert_eq!(parse_int("-1", -5, 5), Ok(-1));
        for bad in ["", "4M", "0x10", "1_000", "1024*1024", " 1", "1.0"] {
            assert_eq!(
                parse_int(bad, 0, 100),
                Err("expected a decimal integer".to_owned()),
                "{bad}"
            );
        }
        assert_eq!(
            parse_int("-1", 0, 100),
            Err("expected a non-negative integer".to_owned())
        );
        assert!(parse_int("101", 0, 100).is_err());
        assert!(parse_int("99999999999999999999", 0, 100).is_err());
    }

    #[test]
    fn java_int_range_is_enforced_for_u32() {
        assert_eq!(u32::parse_value("2147483647"), Ok(2_147_483_647));
        assert!(u32::parse_value("2147483648").is_err());
        assert!(u32::parse_value("-5").is_err());
    }

    #[test]
    fn booleans_are_true_or_false_in_any_case() {
        assert_eq!(bool::parse_value("TRUE"), Ok(true));
        assert_eq!(bool::parse_value("False"), Ok(false));
        for bad in ["yes", "1", "on", ""] {
            assert_eq!(
                bool::parse_value(bad),
                Err("expected true or false".to_owned())
            );
        }
    }

    #[test]
    fn ports_are_1_to_65535() {
        assert_eq!(parse_port("9876"), Ok(9876));
        for bad in ["0", "70000", "-1", "x"] {
            assert_eq!(
                parse_port(bad),
                Err("expected a port in 1..=65535".to_owned())
            );
        }
    }

    #[test]
    fn address_lists_need_host_and_port() {
        assert!(check_addr_list("192.168.5.57:9876;192.168.5.58:9876").is_ok());
        assert!(check_addr_list(" a:1 ; b:2 ;").is_ok());
        assert!(check_addr_list("").is_err());
        assert!(check_addr_list(";").is_err());
        let err = check_addr_list("a:1;nohost").unwrap_err();
        assert!(err.contains("\"nohost\""), "{err}");
        assert!(check_addr_list(":9876").is_err());
        assert!(check_addr_list("a:99999").is_err());
        assert_eq!(
            split_addr_list(" a:1 ;; b:2;").collect::<Vec<_>>(),
            ["a:1", "b:2"]
        );
    }

    #[test]
    fn delete_when_hours() {
        assert!(parse_hours("04").is_ok());
        assert!(parse_hours("04;16").is_ok());
        for bad in ["", "24", "4am", "04;", "-1"] {
            assert!(parse_hours(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn delay_levels() {
        assert!(
            parse_delay_levels("1s 5s 10s 30s 1m 2m 3m 4m 5m 6m 7m 8m 9m 10m 20m 30m 1h 2h")
                .is_ok()
        );
        assert!(parse_delay_levels("1d").is_ok());
        for bad in ["", "1", "s", "1x", "1.5s"] {
            assert!(parse_delay_levels(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn option_empty_is_none_and_renders_empty() {
        assert_eq!(Option::<String>::parse_value(""), Ok(None));
        assert_eq!(Option::<String>::render(&None), "");
        assert_eq!(
            Option::<String>::parse_value("x").map(|v| v.render()),
            Ok("x".to_owned())
        );
    }
}
